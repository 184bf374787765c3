"""A WSGI app for the gunicorn tests: ONE AsyncLogClient made at import, as users write it.

    gunicorn [--preload] -w 3 --pythonpath tests/helpers gunicorn_app:app

With --preload the module (and so the client) is imported once in the master, before the
workers are forked; without it, every worker imports it after its fork. The server URL and the
spool directory come from the environment (LOG_SERVER_URL, LOG_COLLECTOR_SPOOL_DIR), as in a
deployment.

Each request logs one record carrying the worker's pid and the request's ``seq`` (from the
query string), then answers JSON: the worker's pid, the spool file it writes, and where the
module was imported (pid and spool at import), so the test can tell master from worker.
``?hold=S`` keeps the worker busy S seconds before answering, so that concurrent requests
spread over the workers (a sync worker serves one request at a time).
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import parse_qs

from log_collector import AsyncLogClient

client = AsyncLogClient(service="gunicorn-app", max_backoff=0.2, close_timeout=5.0)
IMPORTED = {"pid": os.getpid(), "spool": str(client.spool_path)}


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    seq = int(query.get("seq", ["-1"])[0])
    client.info("request served", seq=seq, pid=os.getpid())
    hold = float(query.get("hold", ["0"])[0])
    if hold:
        time.sleep(hold)
    body = json.dumps(
        {"pid": os.getpid(), "spool": str(client.spool_path), "imported": IMPORTED, "seq": seq}
    ).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]
