"""What multiprocessing workers run in tests/test_multiprocess.py.

Importable by name (``helpers.mp_tasks``), so that spawn children find these functions.
With the 'fork' start method a worker uses the parent's client, inherited through fork (as
``CLIENT``, set by the test before the pool starts, or as a Process argument, which fork does
not pickle); with 'spawn' the worker makes a client of its own, since a client cannot be sent
to another process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from log_collector import AsyncLogClient

CLIENT: AsyncLogClient | None = None


def own_client(server_url: str, spool_dir: str) -> AsyncLogClient:
    # A spawn child runs atexit, so the library's hook closes this client when it exits.
    return AsyncLogClient(
        server_url, service="mp-spawn", spool_dir=spool_dir, max_backoff=0.2, close_timeout=1.0
    )


def init_own_client(server_url: str, spool_dir: str) -> None:
    """Pool initializer for 'spawn': the worker's own client."""
    global CLIENT
    CLIENT = own_client(server_url, spool_dir)


def log_records(task: tuple[int, int]) -> dict[str, Any]:
    """A Pool task: log ``count`` records as task ``number`` with the worker's CLIENT."""
    number, count = task
    assert CLIENT is not None
    for seq in range(count):
        CLIENT.info("pool task record", task=number, seq=seq, pid=os.getpid())
    return {"pid": os.getpid(), "task": number, "spool": str(CLIENT.spool_path)}


def worker_main(
    number: int,
    count: int,
    out_dir: str,
    client: AsyncLogClient | None = None,
    server_url: str = "",
    spool_dir: str = "",
) -> None:
    """A Process target: log ``count`` records with ``client`` (fork: the parent's, inherited)
    or with a client of its own (spawn), then write ``worker-<number>.json`` in ``out_dir``."""
    if client is None:
        client = own_client(server_url, spool_dir)
    for seq in range(count):
        client.info("process worker record", worker=number, seq=seq, pid=os.getpid())
    report = {"pid": os.getpid(), "worker": number, "spool": str(client.spool_path)}
    Path(out_dir, f"worker-{number}.json").write_text(json.dumps(report))


def log_with(client: AsyncLogClient) -> None:
    """A Process target that was handed a client (which cannot be pickled)."""
    client.info("from a child that was sent the client", pid=os.getpid())
