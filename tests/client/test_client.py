"""AsyncLogClient as the application sees it: log calls, flush, close, queue, stats, bad input,
bad settings and a spool that cannot be written. Real spool files in tmp_path, the real
receiver on 127.0.0.1, real child processes where the process boundary is the point.
"""

import asyncio
import datetime as dt
import decimal
import json
import subprocess
import threading
import uuid
from types import SimpleNamespace

import pytest
from helpers import DEADLINE, PYTHON, LoggingChild, crash_spool, script, spool_files
from receiver import Receiver

from log_collector import LEVELS, AsyncLogClient, ConfigError
from log_collector.client.settings import MIN_SPOOL_BYTES
from log_collector.client.spool import inspect

pytestmark = pytest.mark.usefixtures("no_sender_thread_left")


def by_seq(receiver) -> dict[int, dict]:
    return {record["seq"]: record for record in receiver.records if "seq" in record}


def closes_within(client, timeout: float, deadline: float = DEADLINE) -> bool:
    """close(timeout) in a thread: whether it returned before `deadline` (a hang guard, not a
    timing measurement)."""
    done = threading.Thread(target=client.close, kwargs={"timeout": timeout}, daemon=True)
    done.start()
    done.join(deadline)
    return not done.is_alive()


# -- the happy path --------------------------------------------------------


def test_records_arrive_once_each_with_their_fields_and_the_apps_caller(make_client, receiver):
    client = make_client(service="payments", environment="test", service_version="v1.2.3")

    for i in range(50):
        client.info("order paid", seq=i, order_id=1000 + i)

    assert True is client.flush(timeout=DEADLINE)
    records = by_seq(receiver)
    assert set(range(50)) == set(records)
    assert 50 == receiver.count()
    assert 50 == len({record["event_id"] for record in receiver.records})
    assert all(1 == n for n in receiver.event_ids.values())
    first = records[0]
    expected = {
        "level": "INFO",
        "message": "order paid",
        "order_id": 1000,
        "service": "payments",
        "environment": "test",
        "service_version": "v1.2.3",
        "log_type": "BACKEND",
        "function_name": "test_records_arrive_once_each_with_their_fields_and_the_apps_caller",
        "file_path": __file__,
    }
    assert expected == {key: first[key] for key in expected}
    assert isinstance(first["line_no"], int)
    assert isinstance(first["created_at"], float)
    uuid.UUID(first["event_id"])  # a well-formed UUID


def test_every_level_method_and_alias_logs_its_level(make_client, receiver):
    client = make_client()

    for seq, method in enumerate(
        ["trace", "debug", "info", "warn", "warning", "error", "fatal", "critical"]
    ):
        getattr(client, method)("level", seq=seq)

    assert True is client.flush(timeout=DEADLINE)
    levels = [by_seq(receiver)[seq]["level"] for seq in range(8)]
    assert ["TRACE", "DEBUG", "INFO", "WARN", "WARN", "ERROR", "FATAL", "FATAL"] == levels


def test_a_spool_file_that_is_empty_when_the_client_closes_is_removed(make_client, tmp_path):
    client = make_client()
    client.info("delivered")
    assert client.flush(timeout=DEADLINE)
    path = client.spool_path
    assert path.exists()

    client.close()

    assert not path.exists()
    assert [] == spool_files(tmp_path / "spool")


# -- flush and close ---------------------------------------------------------


def test_flush_is_false_while_the_server_is_down_and_true_once_it_delivered(make_client, receiver):
    client = make_client()
    receiver.stop()
    for i in range(10):
        client.info("waiting", seq=i)

    down = client.flush(timeout=0.3)
    receiver.start()
    up = client.flush(timeout=DEADLINE)

    assert (False, True) == (down, up)
    assert set(range(10)) == set(by_seq(receiver))


def test_close_with_the_server_down_returns_keeps_the_rows_and_says_so_once_on_stderr(
    make_client, receiver, tmp_path, capsys
):
    client = make_client()
    receiver.stop()
    for i in range(7):
        client.info("kept", seq=i)
    path = client.spool_path

    assert closes_within(client, timeout=0.5)

    info = inspect(path)
    assert 7 == info["rows"]
    assert receiver.url == info["target_url"]
    where = str(tmp_path / "spool")
    said = [line for line in capsys.readouterr().err.splitlines() if where in line]
    assert 1 == len(said)  # one line, naming the directory the rows are kept in...
    assert "7" in said[0]  # ...and how many


def test_close_with_a_request_hanging_returns_and_keeps_the_rows(make_client, receiver):
    client = make_client(timeout=1.0, flush_interval=3600)
    client.info("warm-up")
    assert client.flush(timeout=DEADLINE)
    # From now on the server takes every batch and never answers in time.
    receiver.delay_next(60.0, n=100)
    for i in range(5):
        client.info("in flight", seq=i)
    client.flush(timeout=0.1)
    assert receiver.wait_until(lambda r: r.faults_pending < 100, timeout=DEADLINE)
    path = client.spool_path

    assert closes_within(client, timeout=0.2)

    info = inspect(path)
    assert 5 == info.get("rows"), info


def test_close_is_idempotent_and_reports_only_once(make_client, receiver, tmp_path, capsys):
    client = make_client()
    receiver.stop()
    client.info("kept")

    client.close(timeout=0.2)
    client.close(timeout=0.2)
    client.close()

    where = str(tmp_path / "spool")
    assert 1 == sum(where in line for line in capsys.readouterr().err.splitlines())


def test_close_can_be_awaited_like_the_older_clients_coroutine(make_client, receiver, tmp_path):
    client = make_client(close_timeout=DEADLINE)  # close() sends what is left first
    client.info("async app", seq=0)

    async def shutdown() -> None:
        await client.close()

    asyncio.run(shutdown())

    assert {0} == set(by_seq(receiver))
    assert [] == spool_files(tmp_path / "spool")


def test_the_client_works_as_a_context_manager(receiver, tmp_path):
    with AsyncLogClient(receiver.url, spool_dir=tmp_path / "spool") as client:
        client.info("scoped", seq=0)

    assert {0} == set(by_seq(receiver))
    assert [] == spool_files(tmp_path / "spool")


# -- bad input never raises ---------------------------------------------------


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_values_json_cannot_hold_never_raise_and_arrive_in_a_string_form(make_client, receiver):
    circular: dict = {"name": "loop"}
    circular["self"] = circular
    when = dt.datetime(2024, 5, 17, 12, 30, tzinfo=dt.UTC)
    values = {
        "object": object(),
        "set": {3, 1, 2},
        "bytes": b"caf\xc3\xa9",
        "datetime": when,
        "date": when.date(),
        "decimal": decimal.Decimal("12.50"),
        "uuid": uuid.UUID(int=1),
        "exception": ValueError("boom"),
        "circular": circular,
        "nan": float("nan"),
        "infinity": float("inf"),
        "unprintable": Unprintable(),
    }
    client = make_client()

    for seq, (name, value) in enumerate(values.items()):
        client.info(f"value: {name}", seq=seq, value=value)

    assert True is client.flush(timeout=DEADLINE)
    arrived = {record["message"][7:]: record["value"] for record in receiver.records}
    assert set(values) == set(arrived)
    assert [1, 2, 3] == arrived["set"]
    assert "café" == arrived["bytes"]
    assert when.isoformat() == arrived["datetime"]
    assert "2024-05-17" == arrived["date"]
    assert "12.50" == arrived["decimal"]
    assert str(uuid.UUID(int=1)) == arrived["uuid"]
    assert "ValueError: boom" == arrived["exception"]
    assert "loop" == arrived["circular"]["name"]
    assert isinstance(arrived["circular"]["self"], str)  # the cycle is cut, not followed
    for name in ("object", "unprintable"):
        assert isinstance(arrived[name], str), name
    assert arrived["nan"] in (None, "nan")  # JSON has no NaN: null or its name
    assert arrived["infinity"] in (None, "inf", "Infinity")


def test_a_1_mib_message_arrives_whole(make_client, receiver):
    client = make_client()
    message = "m" * (1024 * 1024)

    client.info(message, seq=0)

    assert True is client.flush(timeout=DEADLINE)
    assert message == by_seq(receiver)[0]["message"]


def test_non_string_keys_in_nested_fields_never_raise(make_client, receiver):
    client = make_client()

    client.info(
        "odd keys",
        seq=0,
        nested={("a", 1): "tuple key", 2: "int key", None: "none key", "deep": {(1,): [1, 2]}},
    )

    assert True is client.flush(timeout=DEADLINE)
    nested = by_seq(receiver)[0]["nested"]
    assert 4 == len(nested)
    assert all(isinstance(key, str) for key in nested)
    assert ["tuple key", "int key", "none key"] == list(nested.values())[:3]
    assert [[1, 2]] == list(nested["deep"].values())


@pytest.mark.parametrize("level", ["VERBOSE", 42, None, ""])
def test_an_unknown_level_never_raises_and_the_record_is_kept(make_client, receiver, level):
    client = make_client()

    client.log(level, "odd level", seq=0)

    assert True is client.flush(timeout=DEADLINE)
    assert by_seq(receiver)[0]["level"] in LEVELS


def test_a_record_logged_after_close_lands_in_a_spool_and_the_next_process_delivers_it(
    make_client, receiver, tmp_path
):
    spool_dir = tmp_path / "spool"
    child = LoggingChild(
        receiver.url, str(spool_dir), "--close-first", "--count", "3",
        stderr_path=tmp_path / "child.err",
    )  # fmt: skip
    assert 0 == child.wait()
    assert {0, 1, 2} == child.returned()  # the log calls returned, none raised
    assert [3] == [inspect(path)["rows"] for path in spool_files(spool_dir)]

    make_client()  # the next process on this spool directory adopts the file

    assert receiver.wait_for(3, timeout=DEADLINE)
    assert {0, 1, 2} == set(by_seq(receiver))


# -- settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"server_url": "not a url"}, "server_url"),
        ({"server_url": "ftp://example.com"}, "server_url"),
        ({"batch_size": 0}, "batch_size"),
        ({"durability": "bogus"}, "durability"),
        ({"spool_full_policy": "x"}, "spool_full_policy"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"max_spool_bytes": 0}, "max_spool_bytes"),
        ({"min_level": "LOUD"}, "min_level"),
    ],
)
def test_an_invalid_setting_raises_config_error_naming_it_and_creates_nothing(
    tmp_path, options, setting
):
    options = {"server_url": "http://127.0.0.1:9", "spool_dir": tmp_path / "spool", **options}

    with pytest.raises(ConfigError) as raised:
        AsyncLogClient(**options)

    assert setting in str(raised.value)
    assert not (tmp_path / "spool").exists()


# -- a spool that cannot be written ---------------------------------------------


def test_an_unusable_spool_directory_degrades_to_the_counted_memory_fallback(
    make_client, receiver, tmp_path, caplog
):
    # Tests run as root, which ignores permission bits: a directory below a regular file
    # cannot be created by anyone, so that is the unusable spool directory here.
    (tmp_path / "a-file").write_text("not a directory")
    client = make_client(spool_dir=tmp_path / "a-file" / "spool")
    receiver.stop()

    for i in range(20):
        client.info("kept in memory", seq=i)

    stats = client.stats()
    assert (20, 20, None) == (stats["fallback"], stats["appended"], stats["spool_path"])
    assert 20 == len(client.queue)
    receiver.start()
    assert True is client.flush(timeout=DEADLINE)
    assert set(range(20)) == set(by_seq(receiver))
    assert 0 == client.stats()["fallback_pending"]
    warnings = [r for r in caplog.records if r.name == "log_collector" and "memory" in r.message]
    assert 1 == len(warnings)  # warned once, not once per record


FULL_DISK_BEFORE = 200  # records that fit in the spool before the disk is full
FULL_DISK_AFTER = 800  # records logged once nothing can be written any more
FULL_DISK_RECORDS = FULL_DISK_BEFORE + FULL_DISK_AFTER


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory):
    """One run of full_disk_child.py: it logs with the server down while its disk fills up,
    then the server comes up and it flushes. Returns what it reported and what arrived."""
    base = tmp_path_factory.mktemp("full-disk")
    with Receiver() as receiver, open(base / "child.err", "w") as stderr:
        receiver.stop()
        child = subprocess.Popen(
            [
                PYTHON,
                script("full_disk_child.py"),
                receiver.url,
                str(base / "spool"),
                str(FULL_DISK_BEFORE),
                str(FULL_DISK_AFTER),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            logged_line = child.stdout.readline()
            receiver.start()
            out, _ = child.communicate("go\n", timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        arrived = {record["seq"] for record in receiver.records}
    detail = (base / "child.err").read_text()[-3000:]
    assert logged_line, f"full_disk_child.py printed nothing; stderr:\n{detail}"
    return SimpleNamespace(
        logged=json.loads(logged_line),
        flushed=json.loads(out.splitlines()[-1]) if out.strip() else None,
        arrived=arrived,
        stderr=detail,
    )


def test_a_full_disk_never_makes_a_log_call_raise_and_records_go_to_the_memory_fallback(
    full_disk,
):
    stats = full_disk.logged["stats"]
    assert 0 == full_disk.logged["raised"]
    assert FULL_DISK_RECORDS == stats["appended"]
    assert FULL_DISK_AFTER == stats["fallback"]
    assert FULL_DISK_BEFORE == stats["spool_rows"]
    assert {} == stats["dropped"]


def test_a_full_disk_still_delivers_every_record_while_the_process_lives(full_disk):
    assert full_disk.flushed is not None, full_disk.stderr
    assert True is full_disk.flushed["flushed"], full_disk.stderr
    assert set(range(FULL_DISK_RECORDS)) == full_disk.arrived


# -- client.queue ------------------------------------------------------------------


def test_queue_shows_the_records_not_yet_acknowledged_and_empties_on_delivery(
    make_client, receiver
):
    client = make_client()
    receiver.stop()
    for i in range(3):
        client.info("pending", seq=i, order_id=i * 10)

    queue = client.queue

    assert 3 == len(queue)
    assert [0, 1, 2] == [record["seq"] for record in queue]
    assert {"message": "pending", "seq": 1, "order_id": 10} == {
        key: queue[1][key] for key in ("message", "seq", "order_id")
    }
    assert 2 == queue[-1]["seq"]
    assert [1, 2] == [record["seq"] for record in queue[1:]]
    with pytest.raises(IndexError):
        queue[3]
    receiver.start()
    assert client.flush(timeout=DEADLINE)
    assert 0 == len(queue)
    assert [] == list(queue)


# -- stats() -----------------------------------------------------------------


def test_stats_follow_records_from_appended_to_acknowledged(make_client, receiver):
    from helpers import eventually

    client = make_client()
    receiver.stop()
    for i in range(10):
        client.info("counted", seq=i)

    assert eventually(lambda: client.stats()["retries"] > 0)
    down = client.stats()
    receiver.start()
    assert client.flush(timeout=DEADLINE)
    up = client.stats()

    assert {"appended": 10, "acknowledged": 0, "spool_rows": 10, "dropped": {}} == {
        key: down[key] for key in ("appended", "acknowledged", "spool_rows", "dropped")
    }
    assert down["spool_bytes"] > 0
    assert down["oldest_pending_age"] >= 0
    assert down["last_error"] is not None
    assert {"appended": 10, "acknowledged": 10, "spool_rows": 0, "spool_bytes": 0} == {
        key: up[key] for key in ("appended", "acknowledged", "spool_rows", "spool_bytes")
    }
    assert up["oldest_pending_age"] is None
    assert up["sent"] >= 10
    assert 0 == up["dead_lettered"]


def test_stats_count_records_dropped_by_a_full_spool_by_reason(make_client, receiver):
    client = make_client(max_spool_bytes=MIN_SPOOL_BYTES, spool_full_policy="drop_newest")
    receiver.stop()

    for i in range(40):
        client.info("may not fit", seq=i, payload="p" * 4000)

    stats = client.stats()
    assert set(stats["dropped"]) == {"spool_full"}
    assert 40 == stats["appended"] + stats["dropped"]["spool_full"]
    receiver.start()
    assert client.flush(timeout=DEADLINE)
    assert stats["appended"] == len(by_seq(receiver))


def test_after_drops_one_warn_record_tells_the_server_how_many_and_why(make_client, receiver):
    client = make_client(max_spool_bytes=MIN_SPOOL_BYTES, spool_full_policy="drop_newest")
    receiver.stop()
    for i in range(40):
        client.info("may not fit", seq=i, payload="p" * 4000)
    dropped = client.stats()["dropped"]["spool_full"]
    receiver.start()
    assert client.flush(timeout=DEADLINE)

    client.info("room again")
    assert client.flush(timeout=DEADLINE)

    warns = [r for r in receiver.records if r["level"] == "WARN" and "seq" not in r]
    assert 1 == len(warns)
    assert str(dropped) in json.dumps(warns[0])
    assert "spool_full" in json.dumps(warns[0])


def test_stats_is_safe_on_a_closed_client(make_client):
    client = make_client()
    client.close()

    stats = client.stats()

    assert {"appended", "acknowledged", "dead_lettered", "dropped", "retries", "spool_rows"} <= set(
        stats
    )


def test_drops_counted_by_a_process_that_died_are_announced_by_the_one_that_adopts_its_spool(
    make_client, receiver
):
    receiver.stop()
    dying = make_client(max_spool_bytes=MIN_SPOOL_BYTES)
    for i in range(300):
        dying.info("x" * 1000, seq=i)  # overflows the cap: drop_oldest counts spool_full
    dropped = dying.stats()["dropped"]["spool_full"]
    crash_spool(dying._spool)  # as if SIGKILLed: the file stays, unannounced drops inside
    receiver.start()

    heir = make_client()

    assert True is heir.flush(timeout=DEADLINE)
    notices = [r for r in receiver.records if "an earlier process dropped" in r["message"]]
    assert 1 == len(notices)
    assert {"spool_full": dropped} == notices[0]["dropped"]
