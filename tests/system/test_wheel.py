"""The built wheel ships the SQL migrations and the dashboard's static files, and the
migrations are found once installed.

The default suite builds the wheel once, checks its contents and metadata, installs it
without dependencies into a private directory and imports it from outside the repository.
The slow test installs it with its dependencies into a brand-new virtualenv.
"""

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys, tempfile
from pathlib import Path
import log_collector
from log_collector.common.migrations import migrations_dir, sql_files
from log_collector.client.spool import Spool
spool = Spool.create(Path(tempfile.mkdtemp()), target_url="http://x")
spool.append(1.0, "{}")
print(json.dumps({
    "module": log_collector.__file__,
    "spool_dir": str(migrations_dir("spool")),
    "kinds": {kind: [name for name, _ in sql_files(kind)] for kind in KINDS},
    "pending": spool.pending(),
}))
"""


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert 0 == done.returncode, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(REPO)])
    [built] = outdir.glob("log_collector_durable-*.whl")
    return built


def _installed_alone(wheel, tmp_path):
    """Installs `wheel` without its dependencies into tmp_path/"site"; returns that directory
    and an empty one outside the repository to run from."""
    target = tmp_path / "site"
    _run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)]
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return target, elsewhere


def _repo_migrations():
    """{kind: [numbered file names]} as they are in the source tree's migrations/."""
    return {
        kind.name: sorted(p.name for p in kind.glob("*.sql"))
        for kind in sorted((REPO / "migrations").iterdir())
        if kind.is_dir()
    }


def _probe(python, kinds, cwd, env=None):
    script = PROBE.replace("KINDS", repr(sorted(kinds)))
    done = _run([str(python), "-c", script], cwd=cwd, env={**os.environ, **(env or {})})
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_wheel_contains_every_migration_under_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    expected = {
        f"log_collector/migrations/{kind}/{name}"
        for kind, files in _repo_migrations().items()
        for name in files
    }
    assert "log_collector/migrations/spool/0001_initial.sql" in expected
    assert set() == expected - names


def test_the_wheel_contains_every_static_file_of_the_dashboard(wheel):
    static = REPO / "log_collector" / "server" / "ui" / "static"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    expected = {path.relative_to(REPO).as_posix() for path in static.rglob("*") if path.is_file()}
    assert "log_collector/server/ui/static/index.html" in expected
    assert "log_collector/server/ui/static/js/app.js" in expected
    assert set() == expected - names


def test_the_wheel_metadata_matches_pyproject(wheel):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()

    requires = {
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    assert f"Name: {project['name']}" in metadata.splitlines()
    assert set(project["dependencies"]) == requires
    assert "log-collector = log_collector.cli:main" in entry_points


def test_the_installed_wheel_finds_its_migrations_outside_the_repository(wheel, tmp_path):
    target, elsewhere = _installed_alone(wheel, tmp_path)

    # The test interpreter's dependencies are reused; the package itself must come from
    # `target`, which PYTHONPATH puts before the editable install of the repository.
    found = _probe(sys.executable, _repo_migrations(), elsewhere, env={"PYTHONPATH": str(target)})

    assert found["module"].startswith(str(target))
    assert str(target / "log_collector" / "migrations" / "spool") == found["spool_dir"]
    assert {
        kind: [Path(name).stem for name in files] for kind, files in _repo_migrations().items()
    } == found["kinds"]
    assert 1 == found["pending"]


@pytest.mark.slow
def test_the_wheel_installs_with_its_dependencies_into_a_fresh_virtualenv(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    found = _probe(venv / "bin" / "python", ["spool"], elsewhere)
    script = _run([str(venv / "bin" / "log-collector"), "--version"], cwd=elsewhere)

    assert found["module"].startswith(str(venv))
    assert {"spool": ["0001_initial"]} == found["kinds"]
    assert 1 == found["pending"]
    assert script.stdout.startswith("log-collector, version ")


def test_serve_and_migrate_run_from_the_installed_wheel(wheel, tmp_path):
    """The server's schema ships in the wheel too: migrate twice (the second is a
    no-op) and serve, from a directory outside the repository."""
    import signal
    import socket
    import time
    import urllib.request

    target, elsewhere = _installed_alone(wheel, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}
    db = f"sqlite:///{elsewhere / 'logs.db'}"
    migrate = [sys.executable, "-m", "log_collector", "migrate", "--db", db]

    first = _run(migrate, cwd=elsewhere, env=env)
    second = _run(migrate, cwd=elsewhere, env=env)

    assert first.stdout.startswith("applied: ")
    assert "up to date" == second.stdout.strip()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "log_collector", "serve", "--db", db, "--port", str(port)],
        cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        ready, deadline = None, time.monotonic() + 60
        while ready is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    ready = r.status
            except OSError:
                time.sleep(0.2)
        assert 200 == ready
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
