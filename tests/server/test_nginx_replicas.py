"""Two ingest replicas behind a real nginx (docs/deployment.md's configuration), sharing one
PostgreSQL store: a client delivers through nginx while one replica is killed with SIGKILL.
Nothing is lost (the client keeps what got no acknowledgement and sends it again; nginx
passes a failed POST to the other replica) and nothing is stored twice (event_id)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import stored_rows, wait_healthy

from log_collector import AsyncLogClient
from log_collector.server import open_store

pytestmark = pytest.mark.postgres

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The upstream block and proxy settings of docs/deployment.md.
CONFIG = """
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream log_collector_ingest {{
        server 127.0.0.1:{first} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:{second} max_fails=1 fail_timeout=5s;
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 16m;
        location / {{
            proxy_pass http://log_collector_ingest;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nginx_available() -> None:
    if not os.path.exists(NGINX):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and no nginx: .ci/run installs Debian's nginx-light")
        pytest.skip("no nginx on this machine")


@pytest.fixture
def replicas(pg_databases) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """Two `log-collector serve` processes on one migrated PostgreSQL database."""
    db = pg_databases.create()
    store = open_store(db)
    store.migrate()
    store.close()
    procs = []
    for _ in range(2):
        port = free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "log_collector.server", "--db", db, "--port", str(port)]
                + ["--log-level", "warning", "--no-access-log"],
            )
        )
        procs[-1].port = port  # type: ignore[attr-defined]
    try:
        for proc in procs:
            wait_healthy(f"http://127.0.0.1:{proc.port}")  # type: ignore[attr-defined]
        yield db, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)


@pytest.fixture
def nginx(nginx_available, replicas, tmp_path) -> Iterator[str]:
    _, procs = replicas
    port = free_port()
    config = tmp_path / "nginx.conf"
    user = "user root root;" if os.geteuid() == 0 else ""
    config.write_text(
        CONFIG.format(
            user=user,
            tmp=tmp_path,
            first=procs[0].port,  # type: ignore[attr-defined]
            second=procs[1].port,  # type: ignore[attr-defined]
            port=port,
        )
    )
    proc = subprocess.Popen([NGINX, "-c", str(config), "-p", str(tmp_path)])
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log = Path(tmp_path / "error.log")
        if log.exists():
            print(log.read_text()[-3000:])


def test_a_client_delivers_through_nginx_while_a_replica_is_killed(nginx, replicas, tmp_path):
    db, procs = replicas
    client = AsyncLogClient(
        nginx,
        service="behind-nginx",
        spool_dir=tmp_path / "spool",
        batch_size=50,
        flush_interval=0.02,
        max_backoff=0.2,
    )
    count = 3000
    logged = [0]

    def log_all() -> None:
        for i in range(count):
            client.info("through nginx", seq=i)
            logged[0] = i + 1
            if i % 50 == 0:
                time.sleep(0.01)  # spread the batches over the kill

    logger = threading.Thread(target=log_all)
    logger.start()
    time.sleep(0.3)
    procs[0].send_signal(signal.SIGKILL)  # mid-delivery: requests in flight are cut
    at_kill = logged[0]
    logger.join(60)

    assert client.flush(timeout=60)
    client.close()
    seqs = [row["metadata"]["seq"] for row in stored_rows(db)]
    assert 0 < at_kill < count  # records were logged both before and after the kill
    assert sorted(seqs) == list(range(count))  # each once: none lost, none twice
    assert procs[0].poll() is not None and procs[1].poll() is None
