"""The settings table (log_collector/client/settings.py ``OPTIONS``): every client setting is
defined once, and ``Settings``, ``load_settings`` and ``AsyncLogClient``'s signature follow it."""

import dataclasses
import inspect

from log_collector import AsyncLogClient
from log_collector.client.settings import DEFAULTS, ENV_VARS, OPTIONS, Settings, load_settings


def test_settings_holds_exactly_the_table_s_settings_in_its_order():
    assert list(OPTIONS) == [field.name for field in dataclasses.fields(Settings)]


def test_the_client_takes_every_setting_with_the_table_s_default():
    """A setting read from the environment defaults to None (not given) in the signature."""
    parameters = inspect.signature(AsyncLogClient).parameters

    expected = {name: None if name in ENV_VARS else DEFAULTS[name] for name in OPTIONS}
    assert expected == {name: parameters[name].default for name in OPTIONS}


def test_with_no_argument_and_no_environment_each_setting_is_its_default(tmp_path):
    settings = load_settings({}, environ={"XDG_CACHE_HOME": str(tmp_path)}, dotenv_path=tmp_path)

    derived = {"spool_dir": tmp_path / "log-collector" / "default"}
    assert {**DEFAULTS, **derived} == dataclasses.asdict(settings)
