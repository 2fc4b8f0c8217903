"""How fast the leaderboard page renders on a big store: 200 runs × 20 tasks × 1,000 samples by default.

The store is generated once by `leaderboard.synthetic` (about 2 minutes on two cores) and reused.
Three measurements, each in fresh processes so that "cold" means nothing cached and nothing imported:

* data: listing the store, reading runs and scores (harness.store), shaping the leaderboard table, with no
  Streamlit cache (warm: the same again, the files now in the OS page cache);
* server: the leaderboard page script run by `streamlit.testing.v1.AppTest` (no browser); cold is the
  first run in a new process, warm a rerun (what any click on the page triggers) over cached data;
* browser: `harness leaderboard` serving the store to headless Chromium, from navigation until the
  table shows the store's models and the caption counts every run. Cold is the first load after a
  server (re)start: nothing imported, nothing cached, the browser holding Streamlit's scripts as it
  would after any earlier visit; warm is a reload (a new session over cached data). The very first
  visit, when the browser also fetches and compiles Streamlit's scripts, is printed separately.
  The same is timed for a one-table Streamlit page (the floor any Streamlit app pays on this
  machine), which is not counted against the targets. Skipped without Chromium.

    python benchmarks/bench_leaderboard.py [--store DIR] [--runs 200] [--tasks 20] [--samples 1000]
        [--repeats 5] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.leaderboard.ranking import build_leaderboard, display_table  # noqa: E402
from harness.leaderboard.synthetic import generate_store  # noqa: E402
from harness.store import list_store, load_store  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
COLD_TARGET_S = 5.0
WARM_TARGET_S = 2.0


def _ensure_store(store: Path, runs: int, tasks: int, samples: int) -> float:
    """Generate the store unless one of this shape is already there; returns seconds spent."""
    listing = list_store(store)
    if len(listing.run_ids("runs")) == runs:
        scores = load_store(listing).scores
        if scores["task"].nunique() == tasks and int(scores["n"].max()) == samples:
            return 0.0
    if store.exists() and any(store.iterdir()):
        raise SystemExit(f"{store} holds a different store; remove it or pass another --store")
    started = time.perf_counter()
    generate_store(store, runs=runs, tasks=tasks, samples=samples)
    return time.perf_counter() - started


def _child_data(store: str, repeats: int) -> dict[str, Any]:
    def once() -> dict[str, float]:
        started = time.perf_counter()
        listing = list_store(store)
        listed = time.perf_counter()
        data = load_store(listing)
        loaded = time.perf_counter()
        display_table(build_leaderboard(data.scores))
        shaped = time.perf_counter()
        return {"list": listed - started, "read": loaded - listed, "shape": shaped - loaded}

    cold = once()
    warm = [once() for _ in range(repeats)]
    return {"cold": cold, "warm": {key: statistics.median(w[key] for w in warm) for key in cold}}


def _child_server(store: str, repeats: int) -> dict[str, Any]:
    from streamlit.testing.v1 import AppTest

    from harness.leaderboard.ui import STORE_KEY

    app = AppTest.from_file(str(ROOT / "leaderboard" / "app.py"), default_timeout=60)
    app.session_state[STORE_KEY] = store

    def render() -> float:
        started = time.perf_counter()
        app.run()
        elapsed = time.perf_counter() - started
        if app.exception or not app.dataframe:
            raise SystemExit(f"the page did not render: {[e.value for e in app.exception]}")
        return elapsed

    cold = render()
    return {"cold": cold, "warm": statistics.median(render() for _ in range(repeats))}


def _in_child(kind: str, store: Path, repeats: int) -> dict[str, Any]:
    command = [sys.executable, __file__, f"--child-{kind}", str(store), "--repeats", str(repeats)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"{kind} measurement failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
        if server.poll() is not None:
            break
    raise SystemExit("the leaderboard server did not start")


# The floor: Streamlit's own cost for a page with one small table and the same caption, served
# and timed exactly like the leaderboard, so the figures separate the app's cost from Streamlit's.
_FLOOR_APP = """
import pandas as pd
import streamlit as st
st.title("Leaderboard")
st.dataframe(pd.DataFrame({"model": ["synth-model-0"], "value": [0.5]}))
st.caption(__import__("sys").argv[1])
"""


class _Server:
    """A Streamlit server on a fixed loopback port, restartable so the browser's cache survives."""

    def __init__(self, port: int, command: list[str]) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self._command = command
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def leaderboard(cls, store: Path, port: int) -> _Server:
        return cls(port, [
            sys.executable, "-m", "harness.cli", "leaderboard", "--store", str(store),
            "--port", str(port), "--address", "127.0.0.1", "--headless",
        ])  # fmt: skip

    @classmethod
    def floor(cls, script: Path, caption: str, port: int) -> _Server:
        return cls(port, [
            sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--", caption,
        ])  # fmt: skip

    def start(self) -> None:
        environment = {**os.environ, "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
        self._process = subprocess.Popen(
            self._command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,
        )
        _wait_healthy(self.url, self._process)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=20)
        self._process = None


# True once the grid's accessible table holds model names and the caption counts every run.
_RENDERED_JS = """
const grid = document.querySelector('[data-testid="stDataFrame"]');
const captions = Array.from(document.querySelectorAll('[data-testid="stCaptionContainer"]'));
return grid !== null && grid.textContent.includes('synth-model-')
    && captions.some(caption => caption.textContent.includes(arguments[0]));
"""


def _browser(server: _Server, runs: int, repeats: int) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    driver = None
    try:
        server.start()
        options = Options()
        options.binary_location = str(CHROMIUM)
        profile = tempfile.mkdtemp(prefix="bench-leaderboard-chromium-")
        for argument in (
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-quic", "--window-size=1500,900", f"--user-data-dir={profile}",
        ):  # fmt: skip
            options.add_argument(argument)
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        expected = f"{runs} runs ×"

        def load() -> float:
            assert driver is not None
            started = time.perf_counter()
            driver.get(server.url)
            while time.perf_counter() - started < 120:
                if driver.execute_script(_RENDERED_JS, expected):
                    return time.perf_counter() - started
                time.sleep(0.02)
            raise SystemExit("the leaderboard table did not appear within 120 s")

        first_visit = load()  # fresh server and a browser that has never loaded the app
        server.stop()
        server.start()
        cold = load()  # fresh server (nothing imported or cached), the app's scripts in the browser cache
        warm = statistics.median(load() for _ in range(repeats))
        return {"first_visit": first_visit, "cold": cold, "warm": warm}
    finally:
        if driver is not None:
            driver.quit()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "harness-bench-leaderboard"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--child-data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-server", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_data:
        print(json.dumps(_child_data(args.child_data, args.repeats)))
        return
    if args.child_server:
        print(json.dumps(_child_server(args.child_server, args.repeats)))
        return

    store = Path(args.store)
    generated = _ensure_store(store, args.runs, args.tasks, args.samples)
    size = sum(path.stat().st_size for path in store.rglob("*.parquet")) / 2**20
    print(
        f"store {store}: {args.runs} runs × {args.tasks} tasks × {args.samples} samples, {size:.0f} MiB",
        end="",
    )
    print(f" (generated in {generated:.0f} s)" if generated else " (reused)")

    data = _in_child("data", store, args.repeats)
    server = _in_child("server", store, args.repeats)
    rows = [
        ("data, uncached: list + read + shape", sum(data["cold"].values()), sum(data["warm"].values())),
        ("server: page script (AppTest)", server["cold"], server["warm"]),
    ]
    reference: list[tuple[str, float, float]] = []
    first_visits = ""
    if not args.no_browser and CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        browser = _browser(_Server.leaderboard(store, _free_port()), args.runs, args.repeats)
        rows.append(("browser: navigation to table shown", browser["cold"], browser["warm"]))
        with tempfile.TemporaryDirectory(prefix="bench-leaderboard-floor-") as folder:
            script = Path(folder) / "floor.py"
            script.write_text(_FLOOR_APP, encoding="utf-8")
            caption = f"{args.runs} runs × {args.tasks} tasks"
            floor = _browser(_Server.floor(script, caption, _free_port()), args.runs, args.repeats)
        reference.append(("(floor) browser: a one-table Streamlit page", floor["cold"], floor["warm"]))
        first_visits = (
            f"leaderboard {browser['first_visit']:.2f} s, one-table page {floor['first_visit']:.2f} s"
        )

    print(f"\ndata cold: {', '.join(f'{k} {v * 1000:.0f} ms' for k, v in data['cold'].items())}")
    print(f"data warm: {', '.join(f'{k} {v * 1000:.0f} ms' for k, v in data['warm'].items())}")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (other work slows every figure)\n")
    print(f"| measurement | cold (s) | warm (s, median of {args.repeats}) |")
    print("|---|---|---|")
    for name, cold, warm in [*rows, *reference]:
        print(f"| {name} | {cold:.2f} | {warm:.2f} |")
    if first_visits:
        print(f"\nfirst visit (the browser also fetches and compiles Streamlit's scripts): {first_visits}")
    slowest_cold, slowest_warm = max(row[1] for row in rows), max(row[2] for row in rows)
    verdict = slowest_cold < COLD_TARGET_S and slowest_warm < WARM_TARGET_S
    targets = f"cold < {COLD_TARGET_S:.0f} s, warm < {WARM_TARGET_S:.0f} s"
    print(f"targets: {targets}: {'met' if verdict else 'NOT met'}")


if __name__ == "__main__":
    main()
