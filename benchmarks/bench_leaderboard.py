"""How fast the leaderboard page renders on a big store: 200 runs × 20 tasks × 1,000 samples by default.

The store is generated once by `leaderboard.synthetic` (about 2 minutes on two cores) and reused. For
more than `CLONE_ABOVE` runs, `leaderboard.synthetic` generates `TEMPLATE_RUNS` runs and the
benchmark writes the rest as copies of them under new run ids, experiments, models and steps (each
run still three part files, as `harness run` leaves it), which builds 10,000 runs in minutes.

Every measurement is taken on the store as written (one part file per run and table), then again
after `harness store compact` has merged the parts into packs; a store that is already compacted
is measured once. The measurements, each in fresh processes so that "cold" means nothing cached
and nothing imported:

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
* cli: `harness scores` over the whole store in each output format (table, csv, json), and
  `harness scores --run ID` for one run, as a script would call them (interpreter start-up included).

Wall times grow with the machine's load; CPU times (data, the page script, the CLI) are printed next to
them, since on shared cores they are the steadier figure.

    python benchmarks/bench_leaderboard.py [--store DIR] [--runs 200] [--tasks 20] [--samples 1000]
        [--repeats 5] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.leaderboard.ranking import build_leaderboard, display_table  # noqa: E402
from harness.leaderboard.synthetic import generate_store  # noqa: E402
from harness.store import (  # noqa: E402
    MARKER_NAME,
    TABLES,
    compact_store,
    list_store,
    load_store,
    write_part,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
COLD_TARGET_S = 3.0
WARM_TARGET_S = 1.0
SCORES_TARGET_S = 1.0
CLONE_ABOVE = 400
TEMPLATE_RUNS = 40
_EXPERIMENTS = 20


def _clone_store(store: Path, runs: int, tasks: int, samples: int) -> None:
    """`TEMPLATE_RUNS` generated runs, then copies of them up to `runs`, written part by part."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    templates = store.parent / f".{store.name}-templates-{tasks}x{samples}"
    if not templates.exists():
        generate_store(templates, runs=TEMPLATE_RUNS, tasks=tasks, samples=samples)
    tables = {table: pq.read_table(templates / table).sort_by("run_id") for table in TABLES[:3]}
    template_ids = tables["runs"].column("run_id").to_pylist()
    by_run = {
        table: {run_id: data.filter(pc.equal(data["run_id"], run_id)) for run_id in template_ids}
        for table, data in tables.items()
    }
    started = tables["runs"].column("created_at")[0].as_py()
    store.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(templates / MARKER_NAME, store / MARKER_NAME)
    for table in TABLES:
        (store / table).mkdir(exist_ok=True)

    def renamed(data: pa.Table, run_id: str) -> pa.Table:
        column = pa.array([run_id] * data.num_rows, pa.string())
        return data.set_column(data.schema.get_field_index("run_id"), data.schema.field("run_id"), column)

    for index in range(runs):
        template = template_ids[index % len(template_ids)]
        experiment = index % _EXPERIMENTS
        run_id = f"clone-{index:05d}-e{experiment}"
        for table in ("samples", "scores"):
            write_part(store, table, run_id, renamed(by_run[table][template], run_id))
        row = renamed(by_run["runs"][template], run_id).to_pylist()[0]
        row.update(
            experiment=f"exp-{experiment}",
            model=f"synth-model-{experiment}",
            step=(index // _EXPERIMENTS + 1) * 100,
            created_at=started + timedelta(seconds=index),
        )
        write_part(store, "runs", run_id, pa.Table.from_pylist([row], schema=tables["runs"].schema))
        if index % 1000 == 999:
            print(f"  {index + 1} runs written", file=sys.stderr)


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
    if runs > CLONE_ABOVE:
        _clone_store(store, runs, tasks, samples)
    else:
        generate_store(store, runs=runs, tasks=tasks, samples=samples)
    return time.perf_counter() - started


def _child_data(store: str, repeats: int) -> dict[str, Any]:
    def once() -> dict[str, float]:
        cpu = time.process_time()
        started = time.perf_counter()
        listing = list_store(store)
        listed = time.perf_counter()
        data = load_store(listing)
        loaded = time.perf_counter()
        display_table(build_leaderboard(data.scores))
        shaped = time.perf_counter()
        return {
            "list": listed - started,
            "read": loaded - listed,
            "shape": shaped - loaded,
            "cpu": time.process_time() - cpu,
        }

    cold = once()
    warm = [once() for _ in range(repeats)]
    return {"cold": cold, "warm": {key: statistics.median(w[key] for w in warm) for key in cold}}


def _child_server(store: str, repeats: int) -> dict[str, Any]:
    from streamlit.testing.v1 import AppTest

    from harness.leaderboard.ui import STORE_KEY

    app = AppTest.from_file(str(ROOT / "leaderboard" / "app.py"), default_timeout=60)
    app.session_state[STORE_KEY] = store

    cpu: list[float] = []

    def render() -> float:
        started, used = time.perf_counter(), time.process_time()
        app.run()
        elapsed = time.perf_counter() - started
        cpu.append(time.process_time() - used)
        # The table is a grid (`st.dataframe`) or, in the heat-map view, an HTML table.
        heat_map = any("harness-heatmap" in str(getattr(html, "value", "")) for html in app.get("html"))
        if app.exception or not (app.dataframe or heat_map):
            raise SystemExit(f"the page did not render: {[e.value for e in app.exception]}")
        return elapsed

    cold = render()
    warm = statistics.median(render() for _ in range(repeats))
    return {"cold": cold, "warm": warm, "cpu_cold": cpu[0], "cpu_warm": statistics.median(cpu[1:])}


def _in_child(kind: str, store: Path, repeats: int) -> dict[str, Any]:
    command = [sys.executable, __file__, f"--child-{kind}", str(store), "--repeats", str(repeats)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"{kind} measurement failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# Every run in each output format (the table is the default), then one run by id.
CLI_COMMANDS: dict[str, tuple[str, ...]] = {
    "(every run, table)": (),
    "--format csv (every run)": ("--format", "csv"),
    "--format json (every run)": ("--format", "json"),
    "--run ID": ("--run", "RUN_ID"),
}


def _cli(store: Path, run_id: str, repeats: int) -> dict[str, Any]:
    """`harness scores` over the whole store and for one run, each in a new process."""

    cpu: list[float] = []

    def once(*extra: str) -> float:
        command = [sys.executable, "-m", "harness.cli", "scores", "--store", str(store), *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds do not grow with the machine's load the way wall time does on two shared cores.
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        return elapsed

    result: dict[str, Any] = {}
    for name, extra in CLI_COMMANDS.items():
        extra = tuple(run_id if part == "RUN_ID" else part for part in extra)
        cpu.clear()
        cold = once(*extra)
        warm = statistics.median(once(*extra) for _ in range(repeats))
        result[name] = {"cold": cold, "warm": warm, "cpu": statistics.median(cpu)}
        print(f"  harness scores ({name}): median CPU time {result[name]['cpu']:.2f} s")
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


# True once the table (a grid, or the heat map's HTML table) holds model names and the caption
# counts every run.
_RENDERED_JS = """
const grid = document.querySelector('[data-testid="stDataFrame"], .harness-heatmap');
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


def _elapsed(phases: dict[str, float]) -> float:
    return sum(seconds for phase, seconds in phases.items() if phase != "cpu")


def _measure(store: Path, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """Cold and warm seconds of every measurement on the store as it is now."""
    data = _in_child("data", store, args.repeats)
    print(f"  data cold: {', '.join(f'{k} {v * 1000:.0f} ms' for k, v in data['cold'].items())}")
    print(f"  data warm: {', '.join(f'{k} {v * 1000:.0f} ms' for k, v in data['warm'].items())}")
    server = _in_child("server", store, args.repeats)
    print(f"  server page script: CPU time cold {server['cpu_cold']:.2f} s, warm {server['cpu_warm']:.2f} s")
    run_id = list_store(store).run_ids("runs")[0]
    cli = _cli(store, run_id, args.repeats)
    rows = [
        ("data, uncached: list + read + shape", _elapsed(data["cold"]), _elapsed(data["warm"])),
        ("server: page script (AppTest)", server["cold"], server["warm"]),
        *((f"`harness scores {name}`", cli[name]["cold"], cli[name]["warm"]) for name in CLI_COMMANDS),
    ]
    if not args.no_browser and CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        browser = _browser(_Server.leaderboard(store, _free_port()), args.runs, args.repeats)
        rows.append(("browser: navigation to table shown", browser["cold"], browser["warm"]))
        print(f"  first visit (the browser also fetches Streamlit's scripts): {browser['first_visit']:.2f} s")
    return rows


def _floor(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    if args.no_browser or not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        return []
    with tempfile.TemporaryDirectory(prefix="bench-leaderboard-floor-") as folder:
        script = Path(folder) / "floor.py"
        script.write_text(_FLOOR_APP, encoding="utf-8")
        caption = f"{args.runs} runs × {args.tasks} tasks"
        floor = _browser(_Server.floor(script, caption, _free_port()), args.runs, args.repeats)
    return [("(floor) browser: a one-table Streamlit page", floor["cold"], floor["warm"])]


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
    files = len(list_store(store).parts)
    print(
        f"store {store}: {args.runs} runs × {args.tasks} tasks × {args.samples} samples, "
        f"{size:.0f} MiB in {files} table files",
        end="",
    )
    print(f" (generated in {generated:.0f} s)" if generated else " (reused)")

    phases: list[tuple[str, list[tuple[str, float, float]]]] = []
    if not list_store(store).packs.live:
        print("as written (one part file per run and table):")
        phases.append(("as written", _measure(store, args)))
    started = time.perf_counter()
    result = compact_store(store)
    print(
        f"`harness store compact`: {time.perf_counter() - started:.1f} s, {result.files_before} -> "
        f"{result.files_after} table files"
    )
    print("compacted:")
    phases.append(("compacted", _measure(store, args)))
    reference = _floor(args)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nmachine: {os.cpu_count()} cores, load average {load} (other work slows every figure)\n")
    print(
        "| measurement | " + " | ".join(f"{name}: cold (s) | {name}: warm (s)" for name, _ in phases) + " |"
    )
    print("|---|" + "---|---|" * len(phases))
    for label, _, _ in phases[-1][1]:
        cells = []
        for _, rows in phases:
            match = [row for row in rows if row[0] == label]
            cells += [f"{match[0][1]:.2f}", f"{match[0][2]:.2f}"] if match else ["", ""]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for label, cold, warm in reference:
        print(f"| {label} | {cold:.2f} | {warm:.2f} |" + " | |" * (len(phases) - 1))
    print(f"(warm: median of {args.repeats})")
    final = phases[-1][1]
    page = [row for row in final if not row[0].startswith("`")]
    scores = [row for row in final if row[0].startswith("`harness scores")]
    verdict = (
        max(row[1] for row in page) < COLD_TARGET_S
        and max(row[2] for row in page) < WARM_TARGET_S
        and all(row[2] < SCORES_TARGET_S for row in scores)
    )
    targets = f"compacted: page cold < {COLD_TARGET_S:.0f} s, warm < {WARM_TARGET_S:.0f} s; scores < 1 s"
    print(f"targets ({targets}): {'met' if verdict else 'NOT met'}")


if __name__ == "__main__":
    main()
