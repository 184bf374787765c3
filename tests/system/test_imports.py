"""Importing the library pulls in no web framework; each integration pulls in only its own.
Checked in fresh interpreters, since this test process has imported every framework."""

import json
import subprocess
import sys

import pytest

FRAMEWORKS = ("flask", "werkzeug", "django", "starlette", "fastapi", "asgiref")


def modules_after(statement, prefixes):
    """The modules whose names start with one of ``prefixes`` that ``statement`` loads,
    run in a fresh interpreter."""
    probe = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def frameworks_after(statement):
    loaded = modules_after(statement, FRAMEWORKS)
    return [m for m in FRAMEWORKS if m in loaded]


@pytest.mark.parametrize(
    "statement",
    [
        "import log_collector",
        "from log_collector import *",
        "import log_collector.integrations, log_collector.client",
        "import log_collector.integrations._common",
        "import log_collector.integrations.asgi",  # pure ASGI: not even starlette
    ],
)
def test_the_core_imports_no_web_framework(statement):
    assert [] == frameworks_after(statement)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("flask", ["flask", "werkzeug"]),
        ("django", ["django", "asgiref"]),
    ],
)
def test_an_integration_imports_only_its_own_framework(module, expected):
    assert expected == frameworks_after(f"import log_collector.integrations.{module}")


def test_the_handler_is_part_of_the_public_api():
    import log_collector

    assert "LogCollectorHandler" in log_collector.__all__
    assert log_collector.client.handler.LogCollectorHandler is log_collector.LogCollectorHandler


def test_the_server_store_loads_none_of_the_clients_dependencies():
    loaded = modules_after(
        "import log_collector.server.store.base", ("requests", "tenacity", "log_collector.client")
    )
    assert [] == loaded


def test_importing_the_package_loads_no_server_module():
    assert [] == modules_after("import log_collector", ("log_collector.server", "fastapi"))


def test_the_common_vocabulary_imports_neither_side():
    loaded = modules_after(
        "import log_collector.common.vocabulary",
        ("log_collector.server", "log_collector.client", "requests"),
    )
    assert [] == loaded


def test_every_lazy_export_resolves_and_is_listed():
    import log_collector

    assert sorted(log_collector._EXPORTS) == sorted(set(log_collector.__all__) - {"__version__"})
    for name in log_collector.__all__:
        assert getattr(log_collector, name) is not None
