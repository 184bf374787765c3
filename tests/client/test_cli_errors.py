"""The command line's failures (log_collector/cli.py): every command takes spool files or
directories, and every expected failure is one line, ``log-collector: error: ...``, exit 1."""

import json
import sqlite3
import subprocess

from helpers import CONSOLE_SCRIPT, DEAD_URL, one_line

from log_collector.client.spool import Spool


def spool_with_dead_letter(directory, event_id):
    """A spool whose process is gone, holding one record and one dead letter."""
    spool = Spool.create(directory, target_url=DEAD_URL)
    spool.append(1.0, json.dumps({"event_id": f"{event_id}-ok"}))
    spool.append(2.0, json.dumps({"event_id": event_id}))
    spool.dead_letter([(spool.read_batch(2)[1], f"rejected by the server: {event_id}")])
    spool.close(remove_if_empty=False)
    return spool.path


def server_database(path):
    """An SQLite file that is not a spool (the server's logs.db); returns its schema."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE logs (id INTEGER PRIMARY KEY, message TEXT)")
    conn.execute("INSERT INTO logs (message) VALUES ('kept')")
    conn.commit()
    conn.close()
    return schema(path)


def schema(path):
    conn = sqlite3.connect(path)
    try:
        return sorted(row[0] for row in conn.execute("SELECT name FROM sqlite_master"))
    finally:
        conn.close()


def test_dead_letters_of_a_directory_lists_those_of_every_spool_in_it(run, tmp_path):
    first = spool_with_dead_letter(tmp_path / "spool", "first")
    second = spool_with_dead_letter(tmp_path / "spool", "second")

    result = run("dead-letters", tmp_path / "spool")

    assert 0 == result.exit_code, result.output
    for path, event_id in ((first, "first"), (second, "second")):
        assert f"{path}:" in result.stdout.splitlines()
        assert f"rejected by the server: {event_id}" in result.stdout
        assert f'    {{"event_id": "{event_id}"}}' in result.stdout.splitlines()


def test_dead_letters_requeue_of_a_directory_requeues_every_spool(run, tmp_path):
    paths = [spool_with_dead_letter(tmp_path / "spool", name) for name in ("a", "b")]

    result = run("dead-letters", tmp_path / "spool", "--requeue")

    assert (0, "requeued 2 record(s)") == (result.exit_code, one_line(result.stdout))
    for path in paths:
        spool = Spool.adopt(path)
        try:
            assert (2, []) == (spool.pending(), spool.dead_letter_rows())
        finally:
            spool.close(remove_if_empty=False)


def test_dead_letters_of_a_directory_without_spools_says_so(run, tmp_path):
    result = run("dead-letters", tmp_path)

    assert (0, "no spool files found") == (result.exit_code, one_line(result.stdout))


def test_dead_letters_and_replay_leave_a_database_that_is_not_a_spool_untouched(run, tmp_path):
    """Adopting a file writes the spool schema into it: a server's logs.db named by
    mistake is refused with one line, and its tables stay as they were."""
    path = tmp_path / "logs.db"
    before = server_database(path)

    listed = run("dead-letters", path)
    replayed = run("replay", path, "--server", DEAD_URL, "--timeout", 1)

    expected = f"log-collector: error: {path}: not a log-collector spool file"
    assert (1, expected) == (listed.exit_code, one_line(listed.stderr))
    assert (1, expected) == (replayed.exit_code, one_line(replayed.stderr))
    assert before == schema(path)


def test_status_without_a_path_and_no_spool_directory_yet_fails_naming_it(run, tmp_path):
    result = run("status")

    where = tmp_path / "cache" / "log-collector"
    assert 1 == result.exit_code
    assert one_line(result.stderr).startswith(
        f"log-collector: error: no spool directory at {where}"
    )
    assert "" == result.stdout


def test_status_of_a_directory_that_does_not_exist_fails_naming_it(run, tmp_path):
    result = run("status", tmp_path / "nowhere")

    assert 1 == result.exit_code
    expected = f"log-collector: error: no such file or directory: {tmp_path / 'nowhere'}"
    assert expected == one_line(result.stderr)


def test_status_of_an_unreadable_spool_file_shows_it_and_exits_1(run, tmp_path):
    (tmp_path / "spool").mkdir()
    broken = tmp_path / "spool" / "1-deadbeef.spool"
    broken.write_bytes(b"this is not an SQLite database" * 100)

    result = run("status", tmp_path / "spool")

    assert 1 == result.exit_code
    assert one_line(result.stdout).startswith(f"{broken}: unreadable: ")
    assert "log-collector: error: 1 of 1 spool file(s) unreadable" == one_line(result.stderr)


def test_replay_of_a_directory_without_spools_says_so_without_a_progress_bar(run, tmp_path):
    result = run("replay", tmp_path, "--server", DEAD_URL)

    assert (0, "no spool files found") == (result.exit_code, one_line(result.stdout))
    assert "replaying" not in result.stderr


def test_replay_of_a_missing_path_fails_before_it_starts_replaying(run, tmp_path):
    result = run("replay", tmp_path / "missing")

    assert 1 == result.exit_code
    expected = f"log-collector: error: no such file or directory: {tmp_path / 'missing'}"
    assert expected == one_line(result.stderr)


def test_migrate_into_a_directory_that_cannot_exist_is_one_line(run):
    result = run("migrate", "--db", "sqlite:////proc/nope/x.db")

    assert 1 == result.exit_code
    assert one_line(result.stderr).startswith("log-collector: error: ")
    assert "/proc/nope" in result.stderr


def test_serve_on_a_database_path_that_cannot_exist_is_one_line_and_exit_1(tmp_path):
    """A real process: the store fails to open before the server listens."""
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "serve", "--db", "sqlite:////proc/nope/x.db", "--port", "9"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert 1 == result.returncode
    line = one_line(result.stderr)
    assert line.startswith("log-collector: error: ")
    assert "/proc/nope" in line
