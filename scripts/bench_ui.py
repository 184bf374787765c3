"""First paint of the dashboard's Explore page on a large SQLite store, beside its floor.

Generates ``--rows`` rows (1,000,000 by default: a week of logs ending now, by
scripts/bench_query.py's generator) into an SQLite store in a temporary directory, serves it
with ``log-collector serve`` on 127.0.0.1 (a process of its own, as a user runs it), and loads
/ui/explore ``--loads`` times in Debian's Chromium through Playwright, each load in a fresh
browser context (empty cache). Each load reports, from navigation start (the page's
``performance.timeOrigin``), when the first ``[data-testid=log-row]`` and the first
``[data-testid=histogram-bar]`` were painted (the frame after they entered the DOM).

The floor, measured in the same run: the requests Explore sends on load (/api/logs,
/api/histogram and /api/facets with its default window, since=24h, and /api/services), each
answered over plain HTTP, then all at once as the page sends them. Medians of ``--loads``.

    .venv/bin/python scripts/bench_ui.py
    .venv/bin/python scripts/bench_ui.py --rows 100000 --loads 3
    .venv/bin/python scripts/bench_ui.py --db /tmp/big.db     # reuse (or keep) a store
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_query import load_sqlite  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from log_collector.server.store import open_store  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# The budget for the first paint of Explore's results on 1,000,000 rows.
BUDGET_S = 1.0
# What Explore asks on load with no filter (static/js/pages/explore.js; filters.js asks
# /api/services for the service menu).
EXPLORE_REQUESTS = {
    "logs": ("/api/logs", {"since": "24h", "limit": "100"}),
    "histogram": ("/api/histogram", {"since": "24h", "buckets": "60"}),
    "facets": (
        "/api/facets",
        {"since": "24h", "fields": "service,level,path,error_type,user_id", "top": "8"},
    ),
    "services": ("/api/services", {}),
}
# Runs in the page before its own scripts (Playwright injects it, outside the page's CSP):
# records when the first row and the first histogram bar enter the DOM, and when the frame
# showing them has been painted (the task after the next animation frame).
WATCH_SCRIPT = """
window.__bench = {};
const marks = {rows: '[data-testid="log-row"]', histogram: '[data-testid="histogram-bar"]'};
const observer = new MutationObserver(() => {
  for (const [name, selector] of Object.entries(marks)) {
    if (window.__bench[name + "_dom"] === undefined && document.querySelector(selector)) {
      window.__bench[name + "_dom"] = performance.now();
      requestAnimationFrame(() => setTimeout(() => {
        window.__bench[name] = performance.now();
      }, 0));
    }
  }
});
observer.observe(document, {childList: true, subtree: true});
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(db: Path, rows: int) -> None:
    """Migrate ``db`` and load ``rows`` generated rows, unless it already holds rows."""
    store = open_store(f"sqlite:///{db}")
    try:
        store.migrate()
        with store.reading() as conn:
            (stored,) = conn.execute("SELECT count(*) FROM logs").fetchone()
        if stored:
            print(f"store {db}: {stored:,} rows already (not regenerated)")
            return
        seconds = load_sqlite(store, rows, time.time())
        print(f"store {db}: {rows:,} rows over 7 days loaded in {seconds:.0f} s")
    finally:
        store.close()


def serve(db: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "log_collector", "serve", "--db", f"sqlite:///{db}",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"bench_ui: the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("bench_ui: the server did not become ready")


def fetch(base: str, name: str) -> float:
    """Seconds to GET and read Explore's ``name`` request."""
    path, params = EXPLORE_REQUESTS[name]
    started = time.perf_counter()
    with urllib.request.urlopen(f"{base}{path}?{urlencode(params)}", timeout=60) as response:
        response.read()
    return time.perf_counter() - started


def floor(base: str, loads: int) -> dict[str, list[float]]:
    """Each request alone, then all at once, ``loads`` times after one unmeasured round."""
    times: dict[str, list[float]] = {name: [] for name in EXPLORE_REQUESTS}
    times["all at once"] = []
    with ThreadPoolExecutor(len(EXPLORE_REQUESTS)) as pool:
        for round_ in range(loads + 1):
            alone = {name: fetch(base, name) for name in EXPLORE_REQUESTS}
            started = time.perf_counter()
            list(pool.map(lambda name: fetch(base, name), EXPLORE_REQUESTS))
            together = time.perf_counter() - started
            if round_ == 0:
                continue
            for name, seconds in alone.items():
                times[name].append(seconds)
            times["all at once"].append(together)
    return times


def first_paints(base: str, loads: int, chromium: str) -> dict[str, list[float]]:
    """Seconds from navigation start to the first row and the first histogram bar painted,
    one fresh browser context per load, after one unmeasured load."""
    times: dict[str, list[float]] = {"rows": [], "histogram": []}
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            for load in range(loads + 1):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                try:
                    page = context.new_page()
                    page.add_init_script(WATCH_SCRIPT)
                    page.goto(f"{base}/ui/explore", wait_until="commit")
                    # Selectors, not wait_for_function: that evaluates a string in the page,
                    # which its Content-Security-Policy (no 'unsafe-eval') refuses.
                    for selector in ('[data-testid="log-row"]', '[data-testid="histogram-bar"]'):
                        page.wait_for_selector(selector, state="attached", timeout=120_000)
                    marks = painted(page)
                finally:
                    context.close()
                if load == 0:
                    continue
                for name in times:
                    times[name].append(marks[name] / 1000)
        finally:
            browser.close()
    return times


def painted(page: Any, timeout: float = 10.0) -> dict[str, float]:
    """The page's marks once both paints are recorded (a frame after the DOM marks)."""
    deadline = time.monotonic() + timeout
    while True:
        marks = page.evaluate("window.__bench")
        if "rows" in marks and "histogram" in marks:
            return marks
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_ui: no paint recorded after the DOM marks: {marks}")
        time.sleep(0.005)


def report(title: str, times: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"  {'':34} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, values in times.items():
        print(
            f"  {name:34} {statistics.median(values) * 1000:10.0f} "
            f"{min(values) * 1000:8.0f} {max(values) * 1000:8.0f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=5, help="measured page loads")
    parser.add_argument(
        "--db", type=Path, help="an SQLite file to use and keep (loaded when it has no rows)"
    )
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    if not Path(args.chromium).exists():
        raise SystemExit(f"bench_ui: no Chromium at {args.chromium} (apt-get install chromium)")
    directory = None
    if args.db is None:
        directory = Path(tempfile.mkdtemp(prefix="lc_bench_ui_"))
        db = directory / "logs.db"
    else:
        db = args.db.resolve()
    try:
        prepare(db, args.rows)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = serve(db, port)
        try:
            paints = first_paints(base, args.loads, args.chromium)
            floors = floor(base, args.loads)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    report(
        f"Explore first paint, from navigation start, {args.loads} loads (fresh context each)",
        {"first log row painted": paints["rows"], "histogram drawn": paints["histogram"]},
    )
    report("floor: Explore's requests over plain HTTP", floors)
    median = statistics.median(paints["rows"])
    verdict = "ok" if median <= BUDGET_S else "OVER BUDGET"
    print(f"\nfirst row painted: median {median * 1000:.0f} ms, budget {BUDGET_S * 1000:.0f} ms")
    print(f"  {verdict}")
    return 0 if median <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
