"""Rating pages in a real browser: `harness leaderboard` serves the app, two raters vote in headless Chromium.

Reuses the leaderboard browser test's server fixture (three mock models, served on a free port);
the pairwise campaign is created and its raters invited after the server started, as an organiser
would. Each rater opens their own invitation link; nothing typed can make one rate as the other,
and the page source before a vote holds no run id and no model name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import tests.leaderboard.test_leaderboard_browser as leaderboard_browser
from benchmarks.screenshot_leaderboard import chromium
from harness.ratings import RatingsDB, plan_campaign, read_ratings
from harness.store import ResultStore
from tests.leaderboard.test_leaderboard_browser import CHROMEDRIVER, CHROMIUM, RENDER_TIMEOUT

# The leaderboard browser test's server fixture, registered in this module under its own name.
served_store = leaderboard_browser.served_store

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)


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


def _body(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def _vote(driver: Any, link: str, rater: str, choice: str, secrets: list[str]) -> str:
    """Open `link`, check the pair is blind, vote `choice`; the page text after the vote."""
    driver.get(link)
    _wait_for(driver, lambda: "Answer B" in _body(driver), "the two answers")
    assert f"Rating as {rater}" in _body(driver)
    source = driver.page_source  # the whole DOM: texts, element ids, widget keys' CSS classes
    leaked = [secret for secret in secrets if secret in source]
    assert not leaked, f"the page names {leaked} before the vote"
    assert "token=" not in driver.current_url  # the token left the address bar
    _click_text(driver, "p", f"{choice} is better")
    _click_text(driver, "button", "Submit vote")
    _wait_for(driver, lambda: f"{choice} was" in _body(driver), "the revealed runs")
    return _body(driver)


def test_two_raters_vote_blind_with_their_own_tokens(served_store: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    store = ResultStore(tmp_path / "store")  # the fixture's store
    runs = store.runs()
    run_ids = runs["run_id"].tolist()[:2]
    models = runs.loc[runs["run_id"].isin(run_ids), "model"].tolist()
    plan = plan_campaign(store, campaign_id="browser-duel", mode="pairwise", runs=run_ids, overlap=2, limit=5)
    db = RatingsDB.for_store(store.root)
    db.create_campaign(plan.campaign, plan.items)
    ann, bob = db.invite("browser-duel", "Ann"), db.invite("browser-duel", "Bob")
    db.close()
    secrets = [*run_ids, *models, *(item.item_id for item in plan.items)]

    with chromium(tmp_path / "chromium-profile", (1400, 1000), exact_viewport=False) as driver:
        # No name to type: the page asks for a token only, and a name in its place opens nothing.
        driver.get(f"{served_store}pairwise")
        box = _wait_for(
            driver,
            lambda: driver.find_elements(By.CSS_SELECTOR, 'input[aria-label="Your sign-in token"]'),
            "the token box",
        )
        assert not driver.find_elements(By.CSS_SELECTOR, 'input[aria-label="Your name"]')
        box[0].send_keys("bob")
        _click_text(driver, "button", "Start rating")
        _wait_for(driver, lambda: "not a sign-in token" in _body(driver), "the refusal")
        assert "Answer A" not in _body(driver)

        revealed_ann = _vote(driver, ann.link(served_store, "pairwise"), "ann", "B", secrets)
        revealed_bob = _vote(driver, bob.link(served_store, "pairwise"), "bob", "A", secrets)
    rows = sorted(db.rating_rows("browser-duel")[2], key=lambda row: row.rater)
    assert [(row.rater, row.vote) for row in rows] == [("ann", "B"), ("bob", "A")]
    assert rows[0].display_order[1] in revealed_ann and rows[1].display_order[0] in revealed_bob
    exported = read_ratings(store.root, "browser-duel").sort_values("rater")
    assert exported["rater"].tolist() == ["ann", "bob"]
    assert exported["winner_run"].tolist() == [rows[0].display_order[1], rows[1].display_order[0]]
