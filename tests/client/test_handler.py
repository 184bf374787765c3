"""LogCollectorHandler (log_collector/handler.py): standard-library logging records arrive at a
real receiver with their level, caller, extra fields and exception; the library's own logging
is never shipped and never recurses; the handler never raises."""

import logging
import logging.config
import sys
import threading

import pytest
from helpers import Collected, delivered

from log_collector import LogCollectorHandler, user_context


@pytest.fixture
def client(make_client):
    return make_client(service="handler-test")


@pytest.fixture
def attached():
    """attached(logger_name, handler, level, propagate): adds the handler; undone after."""
    undo = []

    def attach(name, handler, level=logging.DEBUG, propagate=True):
        logger = logging.getLogger(name)
        undo.append((logger, handler, logger.level, logger.propagate))
        logger.setLevel(level)
        logger.propagate = propagate
        logger.addHandler(handler)
        return logger

    yield attach
    for logger, handler, level, propagate in reversed(undo):
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def library_says(attached):
    collected = Collected()
    attached("log_collector", collected)
    return collected


def test_extra_fields_and_the_apps_own_caller_arrive(client, receiver, attached):
    logger = attached("app", LogCollectorHandler(client))

    logger.info("x", extra={"order_id": 7})
    line = sys._getframe().f_lineno - 1

    [record] = delivered(client, receiver)
    assert {
        "level": "INFO",
        "message": "x",
        "logger": "app",
        "order_id": 7,
        "function_name": "test_extra_fields_and_the_apps_own_caller_arrive",
        "file_path": __file__,
        "line_no": line,
        "service": "handler-test",
    } == {key: record.get(key) for key in (
        "level", "message", "logger", "order_id", "function_name", "file_path", "line_no",
        "service",
    )}  # fmt: skip


def test_levels_are_mapped_onto_the_collectors_levels(client, receiver, attached):
    logger = attached("app", LogCollectorHandler(client), level=1)

    for levelno in (5, logging.DEBUG, logging.INFO, 25, logging.WARNING, logging.ERROR, 45):
        logger.log(levelno, str(levelno))
    logger.critical("critical")

    assert [
        ("5", "TRACE"),
        ("10", "DEBUG"),
        ("20", "INFO"),
        ("25", "INFO"),
        ("30", "WARN"),
        ("40", "ERROR"),
        ("45", "ERROR"),
        ("critical", "FATAL"),
    ] == [(r["message"], r["level"]) for r in delivered(client, receiver)]


def test_logger_exception_arrives_with_error_type_and_stack_trace(client, receiver, attached):
    logger = attached("app", LogCollectorHandler(client))

    def charge():
        raise ValueError("card declined")

    try:
        charge()
    except ValueError:
        logger.exception("payment failed")

    [record] = delivered(client, receiver)
    assert ("ERROR", "payment failed", "ValueError") == (
        record["level"],
        record["message"],
        record["error_type"],
    )
    assert "in charge" in record["stack_trace"]
    assert record["stack_trace"].endswith("ValueError: card declined\n")
    assert (
        "test_logger_exception_arrives_with_error_type_and_stack_trace" == (record["function_name"])
    )


def test_stack_info_becomes_the_stack_trace(client, receiver, attached):
    logger = attached("app", LogCollectorHandler(client))

    logger.warning("where am I", stack_info=True)

    [record] = delivered(client, receiver)
    assert record["stack_trace"].startswith("Stack (most recent call last):")
    assert "test_stack_info_becomes_the_stack_trace" in record["stack_trace"]


def test_the_message_is_formatted_with_its_arguments(client, receiver, attached):
    logger = attached("app", LogCollectorHandler(client))

    logger.info("paid %s for order %d", "12.50", 42)

    assert ["paid 12.50 for order 42"] == [r["message"] for r in delivered(client, receiver)]


def test_a_bad_format_string_keeps_the_record_and_says_what_went_wrong(
    client, receiver, attached, capsys
):
    # Not propagated: pytest's own capturing handler raises on a bad format string.
    logger = attached("app", LogCollectorHandler(client), propagate=False)

    logger.info("order %d", "not a number")

    [record] = delivered(client, receiver)
    assert ("order %d", "('not a number',)") == (record["message"], record["log_args"])
    assert record["format_error"].startswith("TypeError")
    assert "Logging error" not in capsys.readouterr().err


def test_request_and_user_contexts_are_added(client, receiver, attached):
    logger = attached("app", LogCollectorHandler(client))

    with user_context(user_id="u-1"):
        logger.info("in context")

    assert ["u-1"] == [r.get("user_id") for r in delivered(client, receiver)]


def test_extra_keys_named_like_log_parameters_are_kept_under_a_prefix(client, receiver, attached):
    logger = attached("app", LogCollectorHandler(client))

    logger.info("x", extra={"level": "gold", "auto_caller": "yes"})

    [record] = delivered(client, receiver)
    assert ("INFO", "gold", "yes") == (
        record["level"],
        record["extra_level"],
        record["extra_auto_caller"],
    )


def test_the_librarys_own_loggers_are_ignored(client, receiver, attached):
    handler = LogCollectorHandler(client)
    attached("log_collector", handler)
    attached("log_collector.client.sender", handler)
    app = attached("app", handler)

    logging.getLogger("log_collector").warning("library trouble")
    logging.getLogger("log_collector.client.sender").warning("more library trouble")
    app.info("app line")

    assert ["app line"] == [r["message"] for r in delivered(client, receiver)]


def test_logging_from_the_sender_thread_is_neither_shipped_nor_recursive(
    client, receiver, attached, library_says
):
    """The root logger at DEBUG with the handler: the sender's own warning (server failing)
    and urllib3's debug lines from the sender thread must not become records."""
    attached("", LogCollectorHandler(client), level=logging.DEBUG)
    receiver.fail_next(2, status=500)

    logging.getLogger("app").info("x")

    assert ["x"] == [r["message"] for r in delivered(client, receiver)]
    assert any("cannot deliver" in r.getMessage() for r in library_says.records)
    assert 3 == len(receiver.requests)


def test_a_log_call_made_while_emitting_is_ignored(client, receiver, attached):
    logger = attached("app", LogCollectorHandler(client))

    class LogsWhenShown:
        def __repr__(self):
            logger.info("from inside repr")
            return "<shown>"

    logger.info("outer", extra={"thing": LogsWhenShown()})

    assert [("outer", "<shown>")] == [
        (r["message"], r["thing"]) for r in delivered(client, receiver)
    ]


def test_a_record_that_cannot_be_emitted_is_counted_and_reported_once(client, library_says, capsys):
    handler = LogCollectorHandler(client)
    broken = logging.makeLogRecord({"name": "app", "msg": "m", "exc_info": "not an exc_info"})

    handler.handle(broken)
    handler.handle(broken)

    assert 2 == handler.errors
    assert 1 == sum("could not emit" in r.getMessage() for r in library_says.records)
    assert "Traceback" not in capsys.readouterr().err


def test_a_client_and_client_settings_together_are_refused(client):
    with pytest.raises(TypeError, match="not both"):
        LogCollectorHandler(client, service="other")


@pytest.fixture
def restored_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    for handler in root.handlers[:]:
        if handler not in saved[0]:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved[1])


def test_dict_config_factory_makes_and_closes_its_own_client(receiver, tmp_path, restored_logging):
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "collector": {
                    "()": "log_collector.LogCollectorHandler",
                    "level": "INFO",
                    "server_url": receiver.url,
                    "service": "from-dict-config",
                    "spool_dir": str(tmp_path / "spool"),
                }
            },
            "root": {"handlers": ["collector"], "level": "DEBUG"},
        }
    )
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h, LogCollectorHandler)]

    logging.getLogger("app").debug("below the handler's level")
    logging.getLogger("app").info("configured")

    assert handler.client.flush(timeout=10)
    assert [("configured", "from-dict-config")] == [
        (r["message"], r["service"]) for r in receiver.records
    ]
    handler.close()
    assert [] == [t for t in threading.enumerate() if t.name == "log-collector-sender"]


def test_dict_config_class_with_a_shared_client(client, receiver, restored_logging):
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "collector": {"class": "log_collector.LogCollectorHandler", "client": client}
            },
            "root": {"handlers": ["collector"], "level": "INFO"},
        }
    )

    logging.getLogger("app").warning("shared")

    assert [("shared", "WARN")] == [(r["message"], r["level"]) for r in delivered(client, receiver)]
