"""The older in-memory client's requests are stored unchanged (issue 3 acceptance).

Its wire format: flat records without event_id, its README's fields, the body
gzip'd from 100 records on, and a 2xx answer is all it looks at.
"""

from __future__ import annotations

import gzip
import json
import time

import pytest
import requests
from server_helpers import stored_rows


def older_client_records(count: int) -> list[dict]:
    now = time.time()
    return [
        {
            "level": ("INFO", "WARN", "ERROR")[i % 3],
            "message": f"Processing payment {i}",
            "created_at": now,
            "service": "payment-api",
            "environment": "production",
            "service_version": "v1.2.3",
            "log_type": "BACKEND",
            "function_name": "process_payment",
            "file_path": "/app/payment.py",
            "trace_id": "abc123",
            "user_id": "user_42",
            "duration_ms": 250.5,
            "amount": 100 + i,
            **(
                {"stack_trace": "Traceback ...", "error_type": "GatewayTimeout"}
                if i % 3 == 2
                else {}
            ),
        }
        for i in range(count)
    ]


def send_like_the_older_client(url: str, logs: list[dict]) -> requests.Response:
    body = json.dumps({"logs": logs}).encode()
    headers = {"Content-Type": "application/json"}
    if len(logs) >= 100:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return requests.post(f"{url}/logs", data=body, headers=headers, timeout=30)


def test_a_small_plain_batch_is_stored_column_by_column(server_url, db_url):
    [sent] = older_client_records(3)[2:]
    response = send_like_the_older_client(server_url, [sent])
    assert 200 == response.status_code
    assert "ok" == response.json()["status"]
    [stored] = stored_rows(db_url)
    assert sent["created_at"] == pytest.approx(stored.pop("created_at"), abs=1e-6)
    assert {
        "id": 1,
        "level": "ERROR",
        "message": "Processing payment 2",
        "service": "payment-api",
        "environment": "production",
        "service_version": "v1.2.3",
        "log_type": "BACKEND",
        "function_name": "process_payment",
        "file_path": "/app/payment.py",
        "trace_id": "abc123",
        "user_id": "user_42",
        "duration_ms": 250.5,
        "stack_trace": "Traceback ...",
        "error_type": "GatewayTimeout",
        "session_id": None,
        "path": None,
        "method": None,
        "action_type": None,
        "deleted": False,
        "metadata": {"amount": 102},
        "event_id": None,
    } == {k: v for k, v in stored.items() if k != "received_at"}


def test_a_gzip_batch_of_100_is_stored_whole(server_url, db_url):
    response = send_like_the_older_client(server_url, older_client_records(150))
    assert (200, 150) == (response.status_code, response.json()["count"])
    assert [f"Processing payment {i}" for i in range(150)] == [
        r["message"] for r in stored_rows(db_url)
    ]


def test_stats_counts_what_the_older_client_sent(server_url):
    send_like_the_older_client(server_url, older_client_records(120))
    assert {
        "total_logs": 120,
        "level_distribution": [
            {"level": "ERROR", "count": 40},
            {"level": "INFO", "count": 40},
            {"level": "WARN", "count": 40},
        ],
        "service_distribution": [{"service": "payment-api", "count": 120}],
        "recent_errors_1h": 40,
    } == requests.get(f"{server_url}/stats").json()


def test_its_retry_of_a_batch_is_stored_again_having_no_event_id(server_url, db_url):
    logs = older_client_records(2)
    send_like_the_older_client(server_url, logs)
    response = send_like_the_older_client(server_url, logs)
    assert (2, 0) == (response.json()["accepted"], response.json()["duplicates"])
    assert 4 == len(stored_rows(db_url))
