"""The command line (log_collector/cli.py): status, replay, dead-letters, through click's
CliRunner and as real processes (the installed console script and ``python -m``)."""

import json
import os
import subprocess
import sys
import time

import pytest
from helpers import CONSOLE_SCRIPT, DEAD_URL, one_line

from log_collector import __version__
from log_collector.client.spool import Spool


def left_spool(directory, target_url, n=3, service="billing"):
    """A spool whose process is gone, with n rows left in it."""
    spool = Spool.create(directory, target_url=target_url, service=service)
    for i in range(n):
        spool.append(1_700_000_000.0 + i, json.dumps({"event_id": f"e{i}", "message": f"m{i}"}))
    spool.close(remove_if_empty=False)
    return spool.path


def pending(path):
    spool = Spool.adopt(path)
    try:
        return spool.pending()
    finally:
        spool.close(remove_if_empty=False)


# status.


def test_status_lists_rows_owner_and_target_of_each_spool(run, tmp_path):
    path = left_spool(tmp_path / "spool", DEAD_URL)

    result = run("status", tmp_path / "spool")

    assert 0 == result.exit_code
    line = one_line(result.stdout)
    assert line.startswith(f"{path}: 3 rows, ")
    assert "0 dead letters" in line
    assert "owner gone" in line
    assert line.endswith(f"target {DEAD_URL}")


def test_status_shows_a_live_owner_with_its_pid(run, tmp_path):
    spool = Spool.create(tmp_path / "spool", target_url=DEAD_URL)
    try:
        result = run("status", spool.path)
    finally:
        spool.close()

    assert f"owner alive (pid {os.getpid()})" in one_line(result.stdout)


LIVE_LOGGER = """
import sys, time
from log_collector import AsyncLogClient
client = AsyncLogClient(sys.argv[1], service="billing", spool_dir=sys.argv[2], flush_interval=0.05)
for i in range(7):
    client.info("waiting for a server", seq=i)
print(client.spool_path, flush=True)
sys.stdin.read()  # alive until the test closes stdin
"""


def test_status_of_a_spool_held_by_a_live_process_shows_its_snapshot(tmp_path):
    """The owner holds its file in exclusive locking mode; status reads the snapshot
    the owner's sender writes beside it, and says how old it is."""
    owner = subprocess.Popen(
        [sys.executable, "-c", LIVE_LOGGER, DEAD_URL, str(tmp_path / "spool")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        path = owner.stdout.readline().strip()
        deadline = time.monotonic() + 30
        while True:  # the sender snapshots at its checkpoints (while backing off here)
            shown = subprocess.run(
                [CONSOLE_SCRIPT, "status", "--json", path], capture_output=True, text=True
            )
            info = json.loads(shown.stdout)
            if info.get("rows") == 7 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        text = subprocess.run([CONSOLE_SCRIPT, "status", path], capture_output=True, text=True)
    finally:
        owner.stdin.close()
        owner.wait(30)

    assert (7, True, str(owner.pid), DEAD_URL) == (
        info["rows"],
        info["owner_alive"],
        info["pid"],
        info["target_url"],
    )
    assert info["bytes"] > 0 and info["oldest_age"] >= 0 and info["snapshot_age"] >= 0
    assert f"owner alive (pid {owner.pid}), figures as of" in one_line(text.stdout)


def test_status_as_json_gives_one_object_per_spool(run, tmp_path):
    left_spool(tmp_path / "spool", DEAD_URL, n=2)
    left_spool(tmp_path / "spool", DEAD_URL, n=1)

    result = run("status", "--json", tmp_path / "spool")

    infos = [json.loads(line) for line in result.stdout.splitlines()]
    assert [1, 2] == sorted(info["rows"] for info in infos)
    assert {(DEAD_URL, "billing", False)} == {
        (i["target_url"], i["service"], i["owner_alive"]) for i in infos
    }


def test_status_of_an_empty_directory_says_so(run, tmp_path):
    result = run("status", tmp_path)

    assert (0, "no spool files found") == (result.exit_code, one_line(result.stdout))


def test_status_without_paths_looks_in_the_configured_spool_dir(run, tmp_path):
    path = left_spool(tmp_path / "configured", DEAD_URL)

    result = run("status", env={"LOG_COLLECTOR_SPOOL_DIR": str(tmp_path / "configured")})

    assert one_line(result.stdout).startswith(f"{path}: 3 rows")


def test_status_without_paths_looks_in_every_service_under_the_cache_dir(run, tmp_path):
    path = left_spool(tmp_path / "cache" / "log-collector" / "billing", DEAD_URL)

    result = run("status")

    assert one_line(result.stdout).startswith(f"{path}: 3 rows")


def test_status_of_a_path_that_does_not_exist_is_an_error(run, tmp_path):
    result = run("status", tmp_path / "missing")

    assert 0 != result.exit_code
    assert "missing" in one_line(result.stderr)


# replay.


def test_replay_drains_a_spool_to_its_own_target_and_removes_it(run, tmp_path, receiver):
    path = left_spool(tmp_path / "spool", receiver.url)

    result = run("replay", tmp_path / "spool", "--timeout", 30)

    assert 0 == result.exit_code, result.output
    assert ["e0", "e1", "e2"] == [r["event_id"] for r in receiver.records]
    assert not path.exists()
    assert "sent 3, dead-lettered 0, left 0" == one_line(result.stdout)


def test_replay_with_server_overrides_each_spools_target(run, tmp_path, receiver):
    path = left_spool(tmp_path / "spool", DEAD_URL)

    result = run("replay", path, "--server", receiver.url, "--timeout", 30)

    assert 0 == result.exit_code, result.output
    assert 3 == receiver.count()
    assert not path.exists()


def test_replay_with_the_server_down_gives_up_at_the_timeout_and_keeps_the_rows(run, tmp_path):
    path = left_spool(tmp_path / "spool", DEAD_URL)

    result = run("replay", path, "--timeout", 1)

    assert 1 == result.exit_code
    assert one_line(result.stdout).startswith("sent 0, dead-lettered 0, left 3 (last error: ")
    assert 3 == pending(path)


def test_replay_skips_a_spool_owned_by_a_live_process_and_fails(run, tmp_path, receiver):
    spool = Spool.create(tmp_path / "spool", target_url=receiver.url)
    spool.append(1.0, "{}")
    try:
        result = run("replay", spool.path, "--timeout", 5)
    finally:
        spool.close()

    assert 1 == result.exit_code
    expected = f"log-collector: error: {spool.path}: in use by a live process"
    assert expected == one_line(result.stderr)
    assert 0 == receiver.count()


def test_replay_dead_letters_what_the_server_refuses_sends_the_rest_and_exits_1(
    run, tmp_path, receiver
):
    receiver.reject_record_if = lambda record: "no" if record["event_id"] == "e1" else False
    path = left_spool(tmp_path / "spool", receiver.url)

    result = run("replay", path, "--timeout", 30)

    assert 1 == result.exit_code
    assert "sent 2, dead-lettered 1, left 0" == one_line(result.stdout)
    assert f"see: log-collector dead-letters {path}" in result.stderr
    assert ["e0", "e2"] == [r["event_id"] for r in receiver.records]
    assert path.exists()  # kept for its dead letter


def test_replay_with_an_invalid_server_url_is_a_one_line_error(run, tmp_path):
    path = left_spool(tmp_path / "spool", DEAD_URL)

    result = run("replay", path, "--server", "ftp://logs")

    assert 1 == result.exit_code
    assert "server_url" in one_line(result.stderr)
    assert 3 == pending(path)


@pytest.mark.parametrize("command", ["replay", "dead-letters"])
def test_a_path_that_does_not_exist_is_a_one_line_error(run, tmp_path, command):
    result = run(command, tmp_path / "missing")

    assert 0 != result.exit_code
    assert "missing" in one_line(result.stderr)


# dead-letters.


def _with_dead_letter(directory):
    spool = Spool.create(directory, target_url=DEAD_URL)
    spool.append(1.0, '{"event_id":"good"}')
    spool.append(2.0, '{"event_id":"poisoned"}')
    spool.dead_letter([(spool.read_batch(2)[1], "rejected by the server: bad level")])
    spool.close(remove_if_empty=False)
    return spool.path


def test_dead_letters_lists_reason_and_body(run, tmp_path):
    path = _with_dead_letter(tmp_path / "spool")

    result = run("dead-letters", path)

    assert 0 == result.exit_code
    header, shown_body = result.stdout.splitlines()
    assert header.startswith("#1 ")
    assert header.endswith(" rejected by the server: bad level")
    assert '    {"event_id":"poisoned"}' == shown_body


def test_dead_letters_requeue_moves_them_back_to_be_sent(run, tmp_path):
    path = _with_dead_letter(tmp_path / "spool")

    result = run("dead-letters", path, "--requeue")

    assert "requeued 1 record(s)" == one_line(result.stdout)
    spool = Spool.adopt(path)
    try:
        assert ['{"event_id":"good"}', '{"event_id":"poisoned"}'] == [
            text for _, text in spool.read_batch(10)
        ]
        assert [] == spool.dead_letter_rows()
    finally:
        spool.close(remove_if_empty=False)


def test_dead_letters_of_a_spool_without_any_says_so(run, tmp_path):
    path = left_spool(tmp_path / "spool", DEAD_URL)

    assert "no dead letters" == one_line(run("dead-letters", path).stdout)


def test_dead_letters_of_a_live_spool_is_a_one_line_error(run, tmp_path):
    spool = Spool.create(tmp_path / "spool", target_url=DEAD_URL)
    try:
        result = run("dead-letters", spool.path)
    finally:
        spool.close()

    assert 1 == result.exit_code
    assert f"log-collector: error: {spool.path}: in use by a live process" == one_line(
        result.stderr
    )


# Help and version.


@pytest.mark.parametrize("command", ["status", "replay", "dead-letters"])
def test_each_command_has_help_with_an_example(run, command):
    result = run(command, "--help")

    assert 0 == result.exit_code
    assert "Example:" in result.stdout


def test_version(run):
    assert f"log-collector, version {__version__}" == one_line(run("--version").stdout)


# Real processes.


def _real(args, cwd):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_python_dash_m_log_collector_runs_the_cli(tmp_path):
    result = _real([sys.executable, "-m", "log_collector", "--help"], tmp_path)

    assert 0 == result.returncode, result.stderr
    for command in ("status", "replay", "dead-letters", "serve", "migrate"):
        assert command in result.stdout


def test_the_installed_console_script_reports_status(tmp_path):
    path = left_spool(tmp_path / "spool", DEAD_URL)

    result = _real([str(CONSOLE_SCRIPT), "status", str(tmp_path / "spool")], tmp_path)

    assert 0 == result.returncode, result.stderr
    assert one_line(result.stdout).startswith(f"{path}: 3 rows")


def test_the_installed_console_script_replays_to_a_real_server(tmp_path, receiver):
    path = left_spool(tmp_path / "spool", DEAD_URL)

    result = _real(
        [str(CONSOLE_SCRIPT), "replay", str(path), "--server", receiver.url, "--timeout", "30"],
        tmp_path,
    )

    assert 0 == result.returncode, result.stderr
    assert 3 == receiver.count()
    assert not path.exists()


def test_the_installed_console_script_fails_with_one_line_on_a_live_spool(tmp_path):
    spool = Spool.create(tmp_path / "spool", target_url=DEAD_URL)
    try:
        result = _real([str(CONSOLE_SCRIPT), "dead-letters", str(spool.path)], tmp_path)
    finally:
        spool.close()

    assert 1 == result.returncode
    assert "in use by a live process" in one_line(result.stderr)
