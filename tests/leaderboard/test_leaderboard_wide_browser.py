"""A wide store in a real browser: 30 runs × 12 tasks fit a 1400 px window without sideways scrolling.

`harness leaderboard` serves a `leaderboard.synthetic` store (plus one-task runs) to Debian's headless
Chromium through selenium, with the helpers `benchmarks/screenshot_leaderboard.py` uses for the README's
screenshot. Needs chromium and chromium-driver (`.ci/run` installs them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.screenshot_leaderboard import (
    CHROMEDRIVER,
    CHROMIUM,
    build_store,
    chromium,
    measure,
    serve_leaderboard,
)
from harness.leaderboard.synthetic import task_names

RUNS, TASKS = 30, 12

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)


def test_every_task_fits_at_1400_px(tmp_path: Path) -> None:
    store = tmp_path / "store"
    build_store(store, runs=RUNS, tasks=TASKS, samples=20, partial_runs=3)
    with serve_leaderboard(store, tmp_path / "server.log") as url, chromium(tmp_path / "profile") as driver:
        widths = measure(driver, url, RUNS)
        shot = tmp_path / "leaderboard.png"
        assert driver.save_screenshot(str(shot))
    assert widths.viewport_width == 1400
    # Neither the table nor the page scrolls sideways, and the table ends inside the window.
    assert widths.table_scroll_width <= widths.table_client_width
    assert widths.page_scroll_width <= widths.viewport_width
    assert widths.table_right <= widths.viewport_width and widths.fits
    # Every task has its column, named with its metric and direction; the one-task runs are not listed.
    headers = " ".join(widths.headers)
    assert all(task in headers for task in task_names(TASKS))
    assert headers.count("↑") + headers.count("↓") == TASKS + 1  # the tasks and the mean rank
    assert widths.rows == RUNS
    assert shot.stat().st_size > 20_000
