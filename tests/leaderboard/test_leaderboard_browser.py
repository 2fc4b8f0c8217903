"""The real app in a real browser: `harness leaderboard` serves a mock-model store to headless Chromium.

Needs Debian's chromium and chromium-driver (`.ci/run` installs them). Set LEADERBOARD_SCREENSHOT to a
path to keep the screenshot (the README's `docs/leaderboard.png` is made this way).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import harness
from benchmarks.screenshot_leaderboard import CHROMEDRIVER, CHROMIUM, chromium, serve_leaderboard

MODELS = ("mock-alpha", "mock-beta", "mock-gamma")
TASKS = ("harness_prose_ppl", "harness_reading_mc", "harness_tone", "harness_facts_qa")
START_TIMEOUT = 40.0
RENDER_TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)


@pytest.fixture
def served_store(tmp_path: Path) -> Iterator[str]:
    """A store of three mock models, served by `harness leaderboard` on a free loopback port."""
    store = tmp_path / "store"
    for index, model in enumerate(MODELS):
        harness.evaluate(
            model=f"mock:{index}",
            model_args={"name": model},
            tasks=list(TASKS),
            store=store,
            experiment="demo",
            step=(index + 1) * 1000,
            bootstrap_resamples=100,
            use_cache=False,
        )
    with ExitStack() as stack:
        try:
            # No --address: the server must listen on loopback by default (see `_listening_addresses`).
            url = stack.enter_context(
                serve_leaderboard(store, tmp_path / "server.log", address=None, timeout=START_TIMEOUT)
            )
        except RuntimeError as error:
            pytest.fail(str(error))
        yield url


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port`, from the kernel's tables (IPv4 and 6)."""
    found: set[str] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.is_file():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def test_the_server_listens_on_loopback_only(served_store: str) -> None:
    port = int(served_store.rstrip("/").rsplit(":", 1)[1])
    addresses = _listening_addresses(port)
    # 127.0.0.1 as the kernel writes it (little-endian hex); never 0.0.0.0 or the IPv6 any-address.
    assert addresses == {"0100007F"}, addresses


def test_leaderboard_renders_in_headless_chromium(served_store: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with chromium(tmp_path / "chromium-profile", (1500, 900), exact_viewport=False) as driver:
        driver.get(served_store)
        deadline = time.monotonic() + RENDER_TIMEOUT
        table_text = ""
        while time.monotonic() < deadline:
            tables = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
            # The data grid draws on a canvas but keeps an accessible table of its cells in the DOM.
            table_text = tables[0].get_attribute("textContent") or "" if tables else ""
            if all(model in table_text for model in MODELS):
                break
            time.sleep(0.2)
        heading = driver.find_element(By.TAG_NAME, "h1").text
        time.sleep(0.5)  # let the grid finish painting before the screenshot
        shot = tmp_path / "leaderboard.png"
        assert driver.save_screenshot(str(shot))
    assert heading == "Leaderboard"
    assert all(model in table_text for model in MODELS), table_text[:500]
    # The grid renders only the columns in view; at least the first task's must be there.
    assert any(task in table_text for task in TASKS), table_text[:500]
    assert shot.stat().st_size > 10_000
    if os.environ.get("LEADERBOARD_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["LEADERBOARD_SCREENSHOT"])
