"""The README's leaderboard screenshot: a wide store in headless Chromium at 1400 px, with its widths checked.

Builds a store of 30 full runs × 12 tasks, plus 4 one-task runs (as `harness score` leaves them), with
`leaderboard.synthetic`; serves it with `harness leaderboard`; opens it in headless Chromium (Debian's
chromium and chromium-driver, through selenium, as the browser tests do) at 1400 × 1000; waits for the
heat map; measures that neither the table nor the page scrolls sideways; and saves the screenshot.

    python benchmarks/screenshot_leaderboard.py [--out docs/leaderboard_wide.png] [--store DIR]

It prints the measured widths as JSON and exits non-zero when the table is wider than the window.
`tests/leaderboard/test_leaderboard_wide_browser.py` runs the same check on a smaller store.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.leaderboard.heatmap import HEATMAP_CLASS
from harness.leaderboard.synthetic import generate_store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1400, 1000)
START_TIMEOUT = 60.0
RENDER_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[1]

# Widths that say whether anything scrolls sideways: the heat map's box and its content, the window.
_MEASURE_JS = f"""
const box = document.querySelector('.{HEATMAP_CLASS}');
if (box === null) return null;
const table = box.querySelector('table');
const headers = Array.from(table.querySelectorAll('thead th')).map(th => th.textContent);
return {{
    table_scroll_width: box.scrollWidth,
    table_client_width: box.clientWidth,
    table_width: table.getBoundingClientRect().width,
    table_right: table.getBoundingClientRect().right,
    rows: table.querySelectorAll('tbody tr').length,
    headers: headers,
    page_scroll_width: document.documentElement.scrollWidth,
    viewport_width: window.innerWidth,
}};
"""


@dataclass(frozen=True)
class Widths:
    table_scroll_width: int
    table_client_width: int
    table_width: float
    table_right: float
    rows: int
    headers: list[str]
    page_scroll_width: int
    viewport_width: int

    @property
    def fits(self) -> bool:
        """Nothing scrolls sideways: not the table's box, not the page, and the table ends in the window."""
        return (
            self.table_scroll_width <= self.table_client_width
            and self.page_scroll_width <= self.viewport_width
            and self.table_right <= self.viewport_width
        )


def build_store(
    root: Path, *, runs: int = 30, tasks: int = 12, samples: int = 60, partial_runs: int = 4
) -> None:
    """The wide store: `runs` full runs of `tasks` tasks and `partial_runs` one-task runs."""
    generate_store(
        root,
        runs=runs,
        tasks=tasks,
        samples=samples,
        experiments=4,
        bootstrap_resamples=100,
        partial_runs=partial_runs,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(
    command: list[str],
    log: Path,
    port: int,
    *,
    environment: dict[str, str],
    timeout: float = START_TIMEOUT,
    stdin: int | None = None,
) -> Iterator[str]:
    """`command` (a `harness leaderboard` line serving on `port`) until Streamlit's health check answers;
    yields its URL and stops it (its whole session) on exit. Raises RuntimeError, with the log, when it
    exits or does not answer within `timeout` seconds."""
    with log.open("wb") as output:
        server = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/_stcore/health", timeout=2
                    ) as reply:
                        if reply.read() == b"ok":
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the leaderboard server did not start:\n{log.read_text()}")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/"
        finally:
            # The command execs into Streamlit, so this pid is the server; its session holds nothing else.
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(timeout=10)


@contextmanager
def serve_leaderboard(
    store: Path, log: Path, *, address: str | None = "127.0.0.1", timeout: float = START_TIMEOUT
) -> Iterator[str]:
    """`harness leaderboard --headless` on a free loopback port (`address=None`: without --address, so on
    the command's default), stopped on exit; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "harness.cli", "leaderboard", "--store", str(store), "--port", str(port)]
    if address is not None:
        command += ["--address", address]
    command += ["--headless"]
    # No file watcher: nothing edits the app meanwhile, and it would cost CPU.
    environment = {**os.environ, "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    with serve(command, log, port, environment=environment, timeout=timeout) as url:
        yield url


@contextmanager
def chromium(
    profile: Path, window: tuple[int, int] = WINDOW, *, exact_viewport: bool = True
) -> Iterator[Any]:
    """A headless Chromium (selenium WebDriver) with a fresh profile and the given window size; with
    `exact_viewport`, no scroll bars and the page's own viewport (not the outer window) is that size."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        *(["--hide-scrollbars"] if exact_viewport else []),
        f"--window-size={window[0]},{window[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        if exact_viewport:
            # --window-size sets the outer window; make the page's own viewport exactly the width asked.
            inner = driver.execute_script("return [window.innerWidth, window.innerHeight];")
            driver.set_window_size(2 * window[0] - inner[0], 2 * window[1] - inner[1])
        yield driver
    finally:
        driver.quit()


def measure(driver: Any, url: str, rows: int) -> Widths:
    """Loads `url`, waits until the heat map holds `rows` rows, and measures it."""
    driver.get(url)
    deadline = time.monotonic() + RENDER_TIMEOUT
    found: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        found = driver.execute_script(_MEASURE_JS)
        if found is not None and found["rows"] >= rows:
            break
        time.sleep(0.3)
    if found is None:
        raise RuntimeError("the leaderboard's heat map did not appear")
    time.sleep(1.0)  # let fonts and the sidebar settle before measuring again and taking the picture
    return Widths(**driver.execute_script(_MEASURE_JS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "leaderboard_wide.png")
    parser.add_argument("--store", type=Path, default=None, help="build the store here (default: a temp dir)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=12)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="screenshot-leaderboard-") as scratch:
        store = args.store or Path(scratch) / "store"
        if not store.exists():
            started = time.perf_counter()
            build_store(store, runs=args.runs, tasks=args.tasks)
            print(f"built {store} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        with (
            serve_leaderboard(store, Path(scratch) / "server.log") as url,
            chromium(Path(scratch) / "profile") as driver,
        ):
            widths = measure(driver, url, args.runs)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
    report = {**asdict(widths), "fits": widths.fits, "screenshot": str(args.out)}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if widths.fits else 1


if __name__ == "__main__":
    raise SystemExit(main())
