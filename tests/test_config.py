"""Settings (log_collector/config.py): explicit argument > environment > .env > defaults,
validated once, every invalid value a ConfigError naming the setting."""

import os
from pathlib import Path

import pytest

from log_collector import AsyncLogClient, ConfigError
from log_collector.config import ENV_VARS, load_settings
from log_collector.record import DEFAULT_REDACT_KEYS


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    """No setting leaks in from the test runner's environment or working directory."""
    for names in ENV_VARS.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)


def settings_from(explicit=None, environ=None, dotenv=None, tmp_path=None):
    dotenv_path = Path(tmp_path or os.getcwd()) / "test.env"
    if dotenv is not None:
        dotenv_path.write_text(dotenv)
    return load_settings(explicit or {}, environ=environ or {}, dotenv_path=dotenv_path)


def test_defaults():
    settings = settings_from()

    assert (
        "http://localhost:8000",
        None,
        "development",
        "v0.0.0-dev",
        "BACKEND",
        1000,
        1.0,
        True,
        False,
        "normal",
        256 * 1024 * 1024,
        "drop_oldest",
        None,
        None,
        DEFAULT_REDACT_KEYS,
        "TRACE",
    ) == (
        settings.server_url,
        settings.service,
        settings.environment,
        settings.service_version,
        settings.log_type,
        settings.batch_size,
        settings.flush_interval,
        settings.enable_compression,
        settings.enable_global_error_handler,
        settings.durability,
        settings.max_spool_bytes,
        settings.spool_full_policy,
        settings.max_record_age,
        settings.api_key,
        settings.redact_keys,
        settings.min_level,
    )
    assert "http://localhost:8000/logs" == settings.logs_url


@pytest.mark.parametrize(
    ("setting", "variable", "value"),
    [
        ("server_url", "LOG_SERVER_URL", "http://logs.example:9000"),
        ("service", "SERVICE_NAME", "payments"),
        ("environment", "ENVIRONMENT", "production"),
        ("service_version", "SERVICE_VERSION", "v1.2.3"),
        ("log_type", "LOG_TYPE", "WORKER"),
        ("api_key", "LOG_COLLECTOR_API_KEY", "k-123"),
    ],
)
def test_explicit_beats_environment_beats_dotenv_beats_default(setting, variable, value):
    explicit = {setting: "http://explicit:1" if setting == "server_url" else "explicit"}
    from_env = "http://env:2" if setting == "server_url" else "env"
    from_file = "http://file:3" if setting == "server_url" else "file"
    dotenv = f"{variable}={from_file}\n"

    assert explicit[setting] == getattr(
        settings_from(explicit, {variable: from_env}, dotenv), setting
    )
    assert from_env == getattr(settings_from({}, {variable: from_env}, dotenv), setting)
    assert from_file == getattr(settings_from({}, {}, dotenv), setting)
    assert value == getattr(settings_from({}, {variable: value}), setting)


def test_spool_dir_and_global_error_handler_come_from_the_environment(tmp_path):
    settings = settings_from(
        {},
        {"LOG_COLLECTOR_SPOOL_DIR": str(tmp_path / "s"), "ENABLE_GLOBAL_ERROR_HANDLER": "true"},
    )

    assert (tmp_path / "s", True) == (settings.spool_dir, settings.enable_global_error_handler)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("false", False)],
)
def test_boolean_environment_values(text, expected):
    environ = {"ENABLE_GLOBAL_ERROR_HANDLER": text}

    assert expected == settings_from({}, environ).enable_global_error_handler


def test_an_empty_environment_variable_counts_as_unset():
    assert "http://localhost:8000" == settings_from({}, {"LOG_SERVER_URL": ""}).server_url


def test_environment_wins_over_node_env():
    environ = {"ENVIRONMENT": "staging", "NODE_ENV": "production"}

    assert "staging" == settings_from({}, environ).environment


def test_node_env_is_used_when_environment_is_unset():
    assert "production" == settings_from({}, {"NODE_ENV": "production"}).environment


def test_node_env_in_the_environment_wins_over_environment_in_dotenv():
    settings = settings_from({}, {"NODE_ENV": "production"}, "ENVIRONMENT=staging\n")

    assert "production" == settings.environment


def test_the_dotenv_file_in_the_working_directory_is_read_but_never_exported(tmp_path):
    (tmp_path / ".env").write_text("SERVICE_NAME=from-dotenv\nLOG_TYPE=WORKER\n")

    settings = load_settings({})

    assert ("from-dotenv", "WORKER") == (settings.service, settings.log_type)
    assert None is os.environ.get("SERVICE_NAME")
    assert None is os.environ.get("LOG_TYPE")


def test_the_real_environment_wins_over_the_dotenv_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("SERVICE_NAME=from-dotenv\n")
    monkeypatch.setenv("SERVICE_NAME", "from-env")

    assert "from-env" == load_settings({}).service


def test_the_client_reads_the_dotenv_file_without_exporting_it(tmp_path):
    (tmp_path / ".env").write_text(f"SERVICE_NAME=svc\nLOG_COLLECTOR_SPOOL_DIR={tmp_path}/sp\n")

    client = AsyncLogClient()
    try:
        assert ("svc", tmp_path / "sp") == (client.service, client.settings.spool_dir)
        assert None is os.environ.get("LOG_COLLECTOR_SPOOL_DIR")
    finally:
        client.close(timeout=0.1)


def test_server_url_loses_its_trailing_slash():
    assert "http://h:1/base" == settings_from({"server_url": " http://h:1/base/ "}).server_url


def test_settings_are_frozen():
    settings = settings_from()

    with pytest.raises(AttributeError):
        settings.batch_size = 5  # type: ignore[misc]


# Validation: each bad value raises ConfigError naming the setting.


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("server_url", "ftp://logs.example"),
        ("server_url", "logs.example:8000"),
        ("server_url", "http://"),
        ("server_url", "http://:8000"),
        ("server_url", "http://localhost:99999"),
        ("server_url", "http://localhost:port"),
        ("server_url", ""),
        ("server_url", 8000),
        ("batch_size", 0),
        ("batch_size", -1),
        ("batch_size", True),
        ("batch_size", "10"),
        ("batch_size", 10.0),
        ("batch_size", 10_001),
        ("flush_interval", 0),
        ("flush_interval", -1.0),
        ("flush_interval", "1"),
        ("timeout", 0),
        ("durability", "bogus"),
        ("durability", "FULL"),
        ("spool_full_policy", "drop_random"),
        ("max_spool_bytes", 0),
        ("max_record_age", 0),
        ("min_level", "verbose"),
        ("min_level", 10),
        ("redact_keys", "password"),
        ("redact_keys", ["password", 3]),
        ("redact_keys", 5),
        ("enable_compression", "maybe"),
        ("service", 42),
    ],
)
def test_an_invalid_setting_raises_a_config_error_naming_it(setting, value):
    with pytest.raises(ConfigError) as caught:
        settings_from({setting: value})

    assert f"{setting}=" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("LOG_SERVER_URL", "not a url", "server_url"),
        ("ENABLE_GLOBAL_ERROR_HANDLER", "maybe", "enable_global_error_handler"),
    ],
)
def test_an_invalid_environment_value_names_the_setting(variable, value, setting):
    with pytest.raises(ConfigError) as caught:
        settings_from({}, {variable: value})

    assert f"{setting}=" in str(caught.value)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("server_url", "ftp://x"), ("batch_size", 0), ("durability", "bogus")],
)
def test_the_client_constructor_rejects_invalid_settings_before_touching_disk(
    tmp_path, argument, value
):
    with pytest.raises(ConfigError, match=argument):
        AsyncLogClient(spool_dir=tmp_path / "spool", **{argument: value})

    assert not (tmp_path / "spool").exists()


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(("level", "expected"), [("warning", "WARN"), ("critical", "FATAL")])
def test_min_level_accepts_aliases(level, expected):
    assert expected == settings_from({"min_level": level}).min_level


def test_redact_keys_are_normalised_to_lower_case_with_underscores():
    settings = settings_from({"redact_keys": ["X-Order-ID", "iban"]})

    assert frozenset({"x_order_id", "iban"}) == settings.redact_keys


# The default spool directory.


def test_default_spool_dir_honours_xdg_cache_home_and_the_service(tmp_path):
    settings = settings_from({"service": "payments"}, {"XDG_CACHE_HOME": str(tmp_path / "cache")})

    assert tmp_path / "cache" / "log-collector" / "payments" == settings.spool_dir


def test_default_spool_dir_falls_back_to_home_cache_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    settings = settings_from({}, {})

    assert tmp_path / "home" / ".cache" / "log-collector" / "default" == settings.spool_dir


def test_a_service_name_cannot_escape_the_spool_directory(tmp_path):
    settings = settings_from({"service": "../../etc"}, {"XDG_CACHE_HOME": str(tmp_path)})

    assert tmp_path / "log-collector" == settings.spool_dir.parent
    assert ".._.._etc" == settings.spool_dir.name


def test_an_explicit_spool_dir_wins_and_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    environ = {"LOG_COLLECTOR_SPOOL_DIR": "/elsewhere", "XDG_CACHE_HOME": "/cache"}

    settings = settings_from({"spool_dir": "~/spool"}, environ)

    assert tmp_path / "spool" == settings.spool_dir
