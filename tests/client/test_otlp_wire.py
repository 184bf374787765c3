"""The client's OTLP wire (log_collector/client/otlp.py): ``wire="otlp"`` ships the spool to
this project's own ``POST /v1/logs`` and to a bare OTLP receiver that decodes with
opentelemetry-proto; partial successes, errors and a SIGKILL mid-logging."""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DEAD_URL, DEADLINE, LoggingChild, drain, spool_files
from otlp_receiver import OtlpReceiver

from log_collector import AsyncLogClient
from log_collector.server import create_app

pytestmark = pytest.mark.usefixtures("no_sender_thread_left")

TRACE = "5b8efff798038103d269b633813fc60c"


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


def server_helpers() -> Any:
    """tests/server/server_helpers.py (a real server in a thread, the stored rows)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    import server_helpers

    return server_helpers


def stored_rows(db: str) -> list[dict[str, Any]]:
    return server_helpers().stored_rows(db)


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, str]]:
    """This project's server on SQLite: (its URL, its database URL)."""
    db = f"sqlite:///{tmp_path}/logs.db"
    with server_helpers().running_server(create_app(db)) as url:
        yield url, db


@pytest.fixture
def otlp_client(tmp_path) -> Iterator:
    made: list[AsyncLogClient] = []

    def make(url: str, **options) -> AsyncLogClient:
        client = AsyncLogClient(
            url,
            service="shop",
            service_version="3.1.0",
            environment="staging",
            spool_dir=tmp_path / "spool",
            wire="otlp",
            max_backoff=0.2,
            **options,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=2.0)


def test_records_reach_this_projects_server_with_every_field_and_their_own_event_id(
    otlp_client, server
):
    url, db = server
    client = otlp_client(url)

    client.warn("card declined", order_id=42, user_id="u-7", trace_id=TRACE, path="/pay")
    client.error("payment failed", error_type="ValueError", stack_trace="Traceback ...")

    assert client.flush(timeout=DEADLINE)
    declined, failed = stored_rows(db)
    assert ("shop", "3.1.0", "staging", "WARN", "BACKEND") == (
        declined["service"],
        declined["service_version"],
        declined["environment"],
        declined["level"],
        declined["log_type"],
    )
    assert (TRACE, "u-7", "/pay", 42) == (
        declined["trace_id"],
        declined["user_id"],
        declined["path"],
        declined["metadata"]["order_id"],
    )
    this_test = "test_records_reach_this_projects_server_with_every_field_and_their_own_event_id"
    assert this_test == declined["function_name"]
    assert declined["file_path"].endswith("test_otlp_wire.py")
    assert ("ERROR", "ValueError", "Traceback ...") == (
        failed["level"],
        failed["error_type"],
        failed["stack_trace"],
    )
    # The client's own ids (UUID version 7), not ids the server derived (version 8).
    assert [7, 7] == [uuid.UUID(row["event_id"]).version for row in (declined, failed)]


def test_a_bare_otlp_receiver_decodes_what_the_semantic_conventions_say(otlp_client, otlp):
    client = otlp_client(otlp.url)

    before = time.time()
    client.error("boom", error_type="KeyError", user_id="u-1", trace_id=TRACE, attempt=3)
    assert client.flush(timeout=DEADLINE)

    [record] = otlp.records
    assert {
        "service.name": "shop",
        "service.version": "3.1.0",
        "deployment.environment.name": "staging",
    } == record.resource
    assert (17, "ERROR", "boom", TRACE) == (
        record.severity_number,
        record.severity_text,
        record.body,
        record.trace_id,
    )
    assert before <= record.time_unix_nano / 1e9 <= time.time()
    attributes = record.attributes
    assert ("KeyError", "u-1", 3) == (
        attributes["exception.type"],
        attributes["user.id"],
        attributes["attempt"],
    )
    assert uuid.UUID(attributes["log.record.uid"]).version == 7
    assert "code.function.name" in attributes and "code.line.number" in attributes
    assert "application/x-protobuf" == otlp.requests[-1]["Content-Type"]


def test_a_batch_of_100_or_more_is_gzipped(otlp_client, otlp):
    client = otlp_client(otlp.url)

    for i in range(150):
        client.info("many", seq=i)
    assert client.flush(timeout=DEADLINE)

    assert "gzip" == otlp.requests[-1].get("Content-Encoding")
    assert list(range(150)) == [r.attributes["seq"] for r in otlp.records]


def test_records_this_projects_server_refuses_by_index_are_dead_lettered(otlp_client, server):
    url, db = server
    client = otlp_client(url)

    client.info("fine")
    client.info("too many values", values=list(range(100_001)))  # over the per-record limit
    client.info("also fine")

    assert client.flush(timeout=DEADLINE)
    assert ["fine", "also fine"] == [row["message"] for row in stored_rows(db)]
    stats = client.stats()
    assert (1, 0) == (stats["dead_lettered"], stats["rejected_unnamed"])
    [(reason,)] = _dead_letter_reasons(client)
    assert "metadata holds more than" in reason


def _dead_letter_reasons(client: AsyncLogClient) -> list[tuple[str]]:
    with client._delivery.spool.hold() as conn:
        return conn.execute("SELECT reason FROM dead_letters").fetchall()


def test_a_partial_success_that_names_no_record_is_acknowledged_and_counted(
    otlp_client, otlp, caplog
):
    otlp.answer_next(rejected=1, message="quota exceeded")
    client = otlp_client(otlp.url)

    client.info("one")
    client.info("two")

    assert client.flush(timeout=DEADLINE)
    stats = client.stats()
    assert (1, 0, 0) == (stats["rejected_unnamed"], stats["dead_lettered"], stats["spool_rows"])
    assert "quota exceeded" in caplog.text
    assert 1 == len(otlp.requests)  # nothing resent: the rest would be stored twice


def test_a_503_with_retry_after_keeps_the_records_until_they_arrive(otlp_client, otlp):
    otlp.answer_next(2, status=503, headers={"Retry-After": "0.1"})
    client = otlp_client(otlp.url)

    client.info("waits")

    assert client.flush(timeout=DEADLINE)
    assert ["waits"] == [r.body for r in otlp.records]
    assert 3 == len(otlp.requests)


def test_an_html_page_is_not_an_acknowledgement(otlp_client, otlp):
    otlp.answer_next(html=True)
    client = otlp_client(otlp.url)

    client.info("kept")

    assert client.flush(timeout=DEADLINE)
    assert ["kept"] == [r.body for r in otlp.records]
    assert 2 == len(otlp.requests)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_mid_logging_then_a_new_process_loses_nothing(server, tmp_path, monkeypatch, seed):
    """As tests/system/test_crash.py, through the OTLP wire to this project's server."""
    url, db = server
    monkeypatch.setenv("LOG_COLLECTOR_WIRE", "otlp")  # the children read it
    spool_dir = tmp_path / "spool"
    run = f"otlp-{seed}"
    child = LoggingChild(url, str(spool_dir), "--run", run, stderr_path=tmp_path / "child.err")
    assert child.wait_first_line(), (tmp_path / "child.err").read_text()
    time.sleep(random.Random(seed).uniform(0.0, 0.5))
    child.kill()
    returned = child.returned()

    after = drain(url, spool_dir)

    assert True is after["flushed"], after
    arrived = [
        row["metadata"]["seq"]
        for row in stored_rows(db)
        if (row["metadata"] or {}).get("run") == run
    ]
    assert len(arrived) == len(set(arrived)), "a record was stored twice"
    assert returned and set() == returned - set(arrived)
    assert set(arrived) - returned <= {max(returned) + 1}
    assert [] == spool_files(spool_dir)


def test_the_wire_comes_from_the_environment_and_sets_the_path(tmp_path):
    from log_collector.client.settings import load_settings

    settings = load_settings(
        {"server_url": "http://collector:4318"},
        environ={"LOG_COLLECTOR_WIRE": "otlp", "XDG_CACHE_HOME": str(tmp_path)},
        dotenv_path=tmp_path,
    )

    assert ("otlp", "http://collector:4318/v1/logs") == (settings.wire, settings.logs_url)


def test_an_unknown_wire_is_a_config_error_naming_the_choices(tmp_path):
    from log_collector import ConfigError

    with pytest.raises(ConfigError, match="wire='grpc'.*'log-collector', 'otlp'"):
        AsyncLogClient("http://x", spool_dir=tmp_path / "spool", wire="grpc")


def leave_records(spool_dir: Path, messages: list[str], **options: Any) -> None:
    """A client that cannot reach its server closes with ``messages`` left in its spool."""
    client = AsyncLogClient(
        DEAD_URL, service="shop", spool_dir=spool_dir, max_backoff=0.2, **options
    )
    for message in messages:
        client.info(message)
    client.close(timeout=0.2)


def test_replay_sends_a_spool_on_the_wire_its_client_used(otlp, run, tmp_path):
    """The spool keeps its client's wire: replayed to another server, an OTLP client's
    records go as protobuf to /v1/logs, which a bare OTLP receiver decodes."""
    leave_records(tmp_path / "spool", ["left 1", "left 2", "left 3"], wire="otlp")

    result = run("replay", tmp_path / "spool", "--server", otlp.url, "--timeout", 30)

    assert result.exit_code == 0, result.output
    assert ["left 1", "left 2", "left 3"] == [r.body for r in otlp.records]
    assert all(r.resource["service.name"] == "shop" for r in otlp.records)
    assert spool_files(tmp_path / "spool") == []


def test_replay_wire_option_sends_a_json_clients_spool_as_otlp(otlp, run, tmp_path):
    leave_records(tmp_path / "spool", ["json 1", "json 2"])

    refused = run("replay", tmp_path / "spool", "--wire", "protobuf")
    result = run(
        "replay", tmp_path / "spool", "--server", otlp.url, "--wire", "otlp", "--timeout", 30
    )

    assert refused.exit_code != 0 and "'protobuf' is not one of" in refused.output
    assert result.exit_code == 0, result.output
    assert ["json 1", "json 2"] == [r.body for r in otlp.records]
