"""A rating page in a real browser: `harness leaderboard` serves the app, headless Chromium votes.

Reuses the leaderboard browser test's server fixture (three mock models, served on a free port);
the pairwise campaign is created in that store after the server started, as an organiser would.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import tests.leaderboard.test_leaderboard_browser as leaderboard_browser
from harness.ratings import RatingsDB, plan_campaign, read_ratings
from harness.store import ResultStore
from tests.leaderboard.test_leaderboard_browser import CHROMEDRIVER, CHROMIUM, RENDER_TIMEOUT

# The leaderboard browser test's server fixture, registered in this module under its own name.
served_store = leaderboard_browser.served_store

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)


def _driver(profile: Path) -> Any:
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
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def _wait_for(driver: Any, find: Any, what: str) -> Any:
    deadline = time.monotonic() + RENDER_TIMEOUT
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    text = driver.find_element("tag name", "body").text
    pytest.fail(f"the page never showed {what}; it shows:\n{text[:1500]}")


def _click_text(driver: Any, tag: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    def find() -> list[Any]:
        return [
            e for e in driver.find_elements(By.TAG_NAME, tag) if e.text.strip() == text and e.is_displayed()
        ]

    _wait_for(driver, find, f"a {tag} '{text}'")[0].click()


def test_a_rater_votes_in_headless_chromium(served_store: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    store = ResultStore(tmp_path / "store")  # the fixture's store
    runs = store.runs()["run_id"].tolist()
    plan = plan_campaign(
        store, campaign_id="browser-duel", mode="pairwise", runs=runs[:2], overlap=1, limit=5
    )
    db = RatingsDB.for_store(store.root)
    db.create_campaign(plan.campaign, plan.items)
    db.close()

    driver = _driver(tmp_path / "chromium-profile")
    try:
        driver.get(f"{served_store}pairwise")
        name = _wait_for(
            driver,
            lambda: driver.find_elements(By.CSS_SELECTOR, 'input[aria-label="Your name"]'),
            "the name box",
        )
        name[0].send_keys("Browser Rater")
        _click_text(driver, "button", "Start rating")
        _wait_for(
            driver, lambda: "Answer B" in driver.find_element(By.TAG_NAME, "body").text, "the two answers"
        )
        body = driver.find_element(By.TAG_NAME, "body").text
        assert not any(run_id in body for run_id in runs)  # blind: no run names before the vote
        _click_text(driver, "p", "B is better")
        _click_text(driver, "button", "Submit vote")
        _wait_for(
            driver, lambda: "B was" in driver.find_element(By.TAG_NAME, "body").text, "the revealed runs"
        )
        revealed = driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()
    (row,) = db.rating_rows("browser-duel")[2]
    assert (row.rater, row.vote) == ("browser rater", "B")
    assert "A was" in revealed and row.display_order[1] in revealed
    exported = read_ratings(store.root, "browser-duel")
    assert exported["winner_run"].tolist() == [row.display_order[1]]
