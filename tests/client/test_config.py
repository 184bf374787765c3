"""Settings (log_collector/config.py): explicit argument > environment > .env > defaults,
validated once, every invalid value a ConfigError naming the setting."""

import logging
import os
from pathlib import Path

import pytest

from log_collector import AsyncLogClient, ConfigError
from log_collector.client.settings import DEFAULT_REDACT_KEYS, ENV_VARS, load_settings


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
        10_000,
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
    from_explicit, from_env, from_file = {
        "server_url": ("http://explicit:1", "http://env:2", "http://file:3"),
        "environment": ("staging", "test", "local"),
        "log_type": ("MOBILE", "IOT", "FRONTEND"),
    }.get(setting, ("explicit", "env", "file"))
    explicit = {setting: from_explicit}
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


# The common fields are checked against the shared vocabulary (log_collector/common/vocabulary.py):
# a value the server's enum columns do not hold would have every record refused.


@pytest.mark.parametrize(
    ("explicit", "environ", "dotenv", "origin"),
    [
        ({"environment": "qa"}, {}, None, ""),
        ({}, {"ENVIRONMENT": "qa"}, None, " (from ENVIRONMENT)"),
        ({}, {}, "ENVIRONMENT=qa\n", " (from ENVIRONMENT in .env)"),
    ],
    ids=["argument", "environment-variable", "dotenv"],
)
def test_an_unknown_environment_raises_naming_the_setting_its_source_and_the_allowed_values(
    explicit, environ, dotenv, origin
):
    with pytest.raises(ConfigError) as caught:
        settings_from(explicit, environ, dotenv)

    message = str(caught.value)
    assert message.startswith(f"log-collector: invalid setting environment='qa'{origin}: ")
    assert "'production', 'staging', 'development', 'test', 'local'" in message
    assert "dev=development" in message


def test_a_client_with_environment_qa_raises_before_touching_disk(tmp_path):
    with pytest.raises(ConfigError, match="environment='qa'"):
        AsyncLogClient(environment="qa", spool_dir=tmp_path / "spool")

    assert not (tmp_path / "spool").exists()


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("prod", "production"),
        ("dev", "development"),
        ("stg", "staging"),
        ("testing", "test"),
        ("Production", "production"),
        (" local ", "local"),
    ],
)
def test_environment_aliases_and_case_become_the_stored_name(given, stored):
    assert stored == settings_from({"environment": given}).environment
    assert stored == settings_from({}, {"ENVIRONMENT": given}).environment


@pytest.mark.parametrize(("given", "stored"), [("worker", "WORKER"), ("Frontend", "FRONTEND")])
def test_log_type_in_any_case_becomes_the_stored_name(given, stored):
    assert stored == settings_from({"log_type": given}).log_type


@pytest.mark.parametrize(
    ("explicit", "environ"),
    [({"log_type": "web"}, {}), ({}, {"LOG_TYPE": "web"}), ({"log_type": 3}, {})],
)
def test_an_unknown_log_type_raises_listing_the_allowed_values(explicit, environ):
    with pytest.raises(ConfigError) as caught:
        settings_from(explicit, environ)

    assert "log_type=" in str(caught.value)
    assert "'BACKEND', 'FRONTEND', 'MOBILE', 'IOT', 'WORKER'" in str(caught.value)


def test_a_node_env_the_server_knows_sets_the_environment():
    assert "development" == settings_from({}, {"NODE_ENV": "dev"}).environment


def test_an_unknown_node_env_is_passed_over_with_one_warning(caplog):
    """NODE_ENV belongs to JavaScript tooling and may hold anything ("ci", "preview"):
    it never stops the app; the next source (or the default) decides."""
    with caplog.at_level("WARNING", logger="log_collector"):
        alone = settings_from({}, {"NODE_ENV": "ci"})
    warnings = [r.getMessage() for r in caplog.records]
    behind_dotenv = settings_from({}, {"NODE_ENV": "ci"}, "ENVIRONMENT=staging\n")

    assert ("development", "staging") == (alone.environment, behind_dotenv.environment)
    assert 1 == len(warnings)
    assert "NODE_ENV='ci'" in warnings[0]


def test_environment_wins_over_an_unknown_node_env_and_still_raises_when_unknown():
    assert "test" == settings_from({}, {"ENVIRONMENT": "test", "NODE_ENV": "ci"}).environment
    with pytest.raises(ConfigError, match="ENVIRONMENT"):
        settings_from({}, {"ENVIRONMENT": "qa", "NODE_ENV": "production"})


@pytest.mark.parametrize(
    ("setting", "value", "why"),
    [
        ("service", "", "non-empty"),
        ("service", "   ", "non-empty"),
        ("service", "s" * 101, "at most 100 characters"),
        ("service_version", "", "non-empty"),
        ("service_version", "v" * 51, "at most 50 characters"),
        ("service_version", 1.2, "non-empty string"),
    ],
)
def test_service_and_version_must_be_non_empty_and_fit_their_columns(setting, value, why):
    with pytest.raises(ConfigError) as caught:
        settings_from({setting: value})

    assert f"{setting}=" in str(caught.value) and why in str(caught.value)


def test_service_and_version_at_their_column_length_are_accepted():
    settings = settings_from({"service": "s" * 100, "service_version": "v" * 50})

    assert (100, 50) == (len(settings.service), len(settings.service_version))


def test_an_over_long_service_name_from_the_environment_names_the_variable():
    with pytest.raises(ConfigError, match=r"\(from SERVICE_NAME\)"):
        settings_from({}, {"SERVICE_NAME": "s" * 101})


# Floors: a value under them only loses records or spins, so it is refused with the minimum.


@pytest.mark.parametrize(
    ("setting", "value", "minimum"),
    [
        ("max_spool_bytes", 10, "at least 65536 bytes"),
        ("max_spool_bytes", 64 * 1024 - 1, "at least 65536 bytes"),
        ("flush_interval", 0.001, "at least 0.01 seconds"),
        ("timeout", 0.01, "at least 0.1 seconds"),
        ("max_backoff", 0.001, "at least 0.05 seconds"),
        ("max_record_age", 1, "at least 60 seconds"),
        ("flush_interval", float("inf"), "finite"),
        ("timeout", float("nan"), "finite"),
        ("close_timeout", -1, "zero or a positive number"),
    ],
)
def test_an_absurd_value_raises_stating_the_minimum(setting, value, minimum):
    with pytest.raises(ConfigError) as caught:
        settings_from({setting: value})

    assert f"{setting}=" in str(caught.value) and minimum in str(caught.value)


def test_values_at_the_floors_are_accepted():
    from log_collector.client.settings import (
        MIN_BACKOFF,
        MIN_FLUSH_INTERVAL,
        MIN_RECORD_AGE,
        MIN_REQUEST_TIMEOUT,
        MIN_SPOOL_BYTES,
    )

    settings = settings_from(
        {
            "max_spool_bytes": MIN_SPOOL_BYTES,
            "flush_interval": MIN_FLUSH_INTERVAL,
            "timeout": MIN_REQUEST_TIMEOUT,
            "max_backoff": MIN_BACKOFF,
            "max_record_age": MIN_RECORD_AGE,
            "close_timeout": 0,
        }
    )

    assert (64 * 1024, 0.0) == (settings.max_spool_bytes, settings.close_timeout)


def test_a_client_with_a_ten_byte_spool_cap_raises_instead_of_dropping_every_record(tmp_path):
    with pytest.raises(ConfigError, match="max_spool_bytes=10: must be at least 65536"):
        AsyncLogClient(max_spool_bytes=10, spool_dir=tmp_path / "spool")


def test_a_dotenv_the_process_cannot_read_is_left_out_with_a_warning(tmp_path, caplog):
    """A ``.env`` whose stat fails (here a name too long for the file system; in a working
    directory the process may not enter, permission denied) never stops the client: the other
    sources decide and one warning names the file."""
    unreadable = tmp_path / ("x" * 300)
    with caplog.at_level(logging.WARNING, logger="log_collector"):
        settings = load_settings({}, environ={"SERVICE_NAME": "from-env"}, dotenv_path=unreadable)
    assert "from-env" == settings.service
    assert [r for r in caplog.records if "is not read" in r.getMessage()]
