"""Uncaught exceptions (log_collector/hooks.py): logged as FATAL with their stack trace through
every client that enabled the global error handler, the previous hooks still run, and a crashed
script's record is in the spool before it exits and is delivered by the next process."""

import asyncio
import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest
from helpers import Collected

from log_collector import AsyncLogClient, asyncio_exception_handler
from log_collector.client.excepthook import (
    install_global_error_handler,
    uninstall_global_error_handler,
)


@pytest.fixture
def previous_hooks():
    """Recording hooks installed before the handler's; the originals come back after."""
    saved = (sys.excepthook, threading.excepthook)
    seen = []
    sys.excepthook = lambda exc_type, exc, tb: seen.append(("sys", exc))
    threading.excepthook = lambda args: seen.append(("thread", args.exc_value))
    yield seen
    uninstall_global_error_handler()
    sys.excepthook, threading.excepthook = saved


def raise_and_catch(exc):
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_an_uncaught_exception_in_a_thread_is_logged_fatal_and_the_previous_hook_runs(
    make_client, receiver, previous_hooks
):
    client = make_client(enable_global_error_handler=True)

    def work():
        raise RuntimeError("worker died")

    thread = threading.Thread(target=work, name="worker-1")
    thread.start()
    thread.join()

    assert client.flush(timeout=10)
    [record] = receiver.records
    assert ("FATAL", "Uncaught exception in thread", "RuntimeError", "worker-1", "work") == (
        record["level"],
        record["message"],
        record["error_type"],
        record["thread_name"],
        record["function_name"],
    )
    assert "RuntimeError: worker died" in record["stack_trace"]
    assert ["thread"] == [where for where, _ in previous_hooks]


def test_sys_excepthook_logs_fatal_and_chains_to_the_previous_hook(
    make_client, receiver, previous_hooks
):
    client = make_client(enable_global_error_handler=True)
    exc = raise_and_catch(KeyError("missing"))

    sys.excepthook(type(exc), exc, exc.__traceback__)

    assert client.flush(timeout=10)
    assert [("FATAL", "Uncaught exception", "KeyError")] == [
        (r["level"], r["message"], r["error_type"]) for r in receiver.records
    ]
    assert [("sys", exc)] == previous_hooks


def test_keyboard_interrupt_and_system_exit_are_not_logged(make_client, receiver, previous_hooks):
    client = make_client(enable_global_error_handler=True)

    for exc in (raise_and_catch(KeyboardInterrupt()), raise_and_catch(SystemExit(3))):
        sys.excepthook(type(exc), exc, exc.__traceback__)
    client.info("marker")

    assert client.flush(timeout=10)
    assert ["marker"] == [r["message"] for r in receiver.records]
    assert 2 == len(previous_hooks)


def test_installing_twice_for_one_client_logs_each_crash_once(
    make_client, receiver, previous_hooks
):
    client = make_client(enable_global_error_handler=True)
    install_global_error_handler(client)
    exc = raise_and_catch(ValueError("once"))

    sys.excepthook(type(exc), exc, exc.__traceback__)

    assert client.flush(timeout=10)
    assert 1 == len(receiver.records)
    assert 1 == len(previous_hooks)


def test_every_registered_client_logs_the_crash(make_client, receiver, tmp_path, previous_hooks):
    first = make_client(enable_global_error_handler=True, service="first")
    second = make_client(
        enable_global_error_handler=True, service="second", spool_dir=tmp_path / "other"
    )
    exc = raise_and_catch(ValueError("both"))

    sys.excepthook(type(exc), exc, exc.__traceback__)

    assert first.flush(timeout=10) and second.flush(timeout=10)
    assert ["first", "second"] == sorted(r["service"] for r in receiver.records)


def test_uninstall_puts_the_previous_hooks_back(make_client, previous_hooks):
    before = (sys.excepthook, threading.excepthook)
    first = make_client(enable_global_error_handler=True)
    second = make_client(enable_global_error_handler=True)
    assert before != (sys.excepthook, threading.excepthook)

    uninstall_global_error_handler(first)
    assert before != (sys.excepthook, threading.excepthook)
    uninstall_global_error_handler(second)

    assert before == (sys.excepthook, threading.excepthook)


def test_a_hook_installed_on_top_keeps_ours_in_the_chain_once(
    make_client, receiver, previous_hooks
):
    client = make_client()
    install_global_error_handler(client)
    ours = sys.excepthook
    sys.excepthook = lambda exc_type, exc, tb: (
        previous_hooks.append(("top", exc)),
        ours(exc_type, exc, tb),
    )
    uninstall_global_error_handler(client)
    install_global_error_handler(client)
    exc = raise_and_catch(ValueError("chained"))

    sys.excepthook(type(exc), exc, exc.__traceback__)

    assert client.flush(timeout=10)
    assert 1 == len(receiver.records)
    assert [("top", exc), ("sys", exc)] == previous_hooks


def test_asyncio_exception_handler_logs_fatal_then_defers_to_the_default(make_client, receiver):
    client = make_client()
    asyncio_log = logging.getLogger("asyncio")
    collected = Collected()
    asyncio_log.addHandler(collected)
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(asyncio_exception_handler(client))
        exc = raise_and_catch(OSError("socket gone"))
        loop.call_exception_handler(
            {"message": "Task exception was never retrieved", "exception": exc}
        )
    finally:
        loop.close()
        asyncio_log.removeHandler(collected)

    assert client.flush(timeout=10)
    assert [("FATAL", "Task exception was never retrieved", "OSError")] == [
        (r["level"], r["message"], r["error_type"]) for r in receiver.records
    ]
    assert ["Task exception was never retrieved"] == [r.getMessage() for r in collected.records]


CRASHING_SCRIPT = """
from log_collector import AsyncLogClient

def main():
    raise RuntimeError("script crashed")

options = dict(
    server_url={url!r}, service="crashy", spool_dir={spool!r},
    enable_global_error_handler=True, max_backoff=0.2, close_timeout=0.2,
)
if {with_block!r}:
    with AsyncLogClient(**options):  # closed before the exception reaches sys.excepthook
        main()
else:
    client = AsyncLogClient(**options)
    main()
"""


@pytest.mark.parametrize("with_block", [False, True], ids=["open-client", "closed-by-with"])
def test_a_crashed_scripts_record_is_spooled_before_exit_and_sent_by_the_next_process(
    receiver, tmp_path, with_block
):
    spool = tmp_path / "spool"
    receiver.stop()  # the server is down while the script crashes
    script = tmp_path / "crash.py"
    script.write_text(
        textwrap.dedent(
            CRASHING_SCRIPT.format(url=receiver.url, spool=str(spool), with_block=with_block)
        )
    )

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)

    assert 1 == done.returncode
    assert "RuntimeError: script crashed" in done.stderr  # the previous hook still printed it
    spooled = []
    for path in spool.glob("*.spool"):
        # Closed before the next client starts: an open connection would keep it from
        # taking the file in exclusive locking mode.
        with contextlib.closing(sqlite3.connect(path)) as db:
            spooled += [json.loads(body) for (body,) in db.execute("SELECT body FROM records")]
    assert [("FATAL", "RuntimeError", "main")] == [
        (r["level"], r["error_type"], r["function_name"]) for r in spooled
    ]

    receiver.start()
    # The next process: a client on the same spool directory adopts the orphaned file and its
    # sender delivers it. Waiting on the receiver rather than next_run.flush(): flush() can
    # raise sqlite3.ProgrammingError when the sender closes the drained orphan while flush
    # checks it (client.py flush/delivered: `a.closed or a.pending()` races Spool.close).
    with AsyncLogClient(server_url=receiver.url, service="next", spool_dir=spool):
        assert receiver.wait_for(1, timeout=10)
    assert [("Uncaught exception", "crashy", "RuntimeError")] == [
        (r["message"], r["service"], r["error_type"]) for r in receiver.records
    ]
    assert "RuntimeError: script crashed" in receiver.records[0]["stack_trace"]
