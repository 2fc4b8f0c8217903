"""The rating pages, run headless by Streamlit's AppTest: a rater walks through both modes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from harness.leaderboard.human import check_passcode
from harness.leaderboard.ui import STORE_KEY
from harness.leaderboard.views import PAGES, VIEWS_DIR
from harness.ratings import RatingsDB, export_ratings, load_gold, load_rubric, plan_campaign, read_ratings
from harness.store import ResultStore
from tests.ratings.test_ratings_support import ROOT, RUBRIC_PATH, two_run_store

TIMEOUT = 30


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Two runs, a rubric campaign and a pairwise campaign with gold items."""
    root = tmp_path / "store"
    good, bad = two_run_store(root, documents=4)
    db = RatingsDB.for_store(root)
    rubric = load_rubric(RUBRIC_PATH)
    results = ResultStore(root)
    plan = plan_campaign(
        results, campaign_id="quality", mode="rubric", runs=[good, bad], rubric=rubric, overlap=2
    )
    db.create_campaign(plan.campaign, plan.items)
    gold = load_gold(ROOT / "examples" / "gold_pairwise.yaml", "pairwise")
    plan = plan_campaign(results, campaign_id="duel", mode="pairwise", runs=[good, bad], overlap=2, gold=gold)
    db.create_campaign(plan.campaign, plan.items)
    db.close()
    return root


def _page(store: Path, script: str, *, passcode: str | None = None) -> AppTest:
    app = AppTest.from_file(str(VIEWS_DIR / script), default_timeout=TIMEOUT)
    app.session_state[STORE_KEY] = str(store)
    if passcode is not None:
        app.secrets["ratings"] = {"passcode": passcode}
    return app.run()


def _ok(app: AppTest) -> AppTest:
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def _sign_in(app: AppTest, name: str, passcode: str | None = None) -> AppTest:
    app.text_input(key="human_name").input(name)
    if passcode is not None:
        app.text_input(key="human_passcode").input(passcode)
    return _ok(_submit(app, "Start rating"))


def _submit(app: AppTest, label: str) -> AppTest:
    (button,) = [button for button in app.button if button.label == label]
    return button.click().run()


def _shown(app: AppTest) -> tuple[str, str]:
    """The rubric page's prompt and output."""
    return app.text[0].value, app.text[1].value


def _texts(app: AppTest, *kinds: str) -> str:
    parts = []
    for kind in kinds or ("success", "warning", "info", "error", "markdown", "caption"):
        for element in app.get(kind):
            assert isinstance(element, Element), element  # a message, not a container
            parts.append(str(element.value))
    return "\n".join(parts)


def test_rubric_walkthrough(store: Path) -> None:
    app = _ok(_page(store, "rate_rubric.py"))
    assert app.title[0].value == "Rate outputs"
    app = _sign_in(app, "Ann")
    assert "Rating as **ann**" in _texts(app)
    first = RatingsDB.for_store(store).next_item("quality", "ann")
    assert first is not None
    shown_first = _shown(app)
    assert shown_first == (first.item.prompt, first.outputs[0])  # the head of ann's queue
    assert first.item.prompt.startswith("Question ")

    # Submitting with a criterion left blank writes nothing and says what is missing.
    app.radio[0].set_value(4)
    app = _ok(_submit(app, "Submit"))
    assert "missing: clarity" in _texts(app, "warning")
    assert RatingsDB.for_store(store).rater_progress("quality", "ann").rated == 0

    app.radio[1].set_value(5)
    app.text_area[0].input("clear enough")
    app = _ok(_submit(app, "Submit"))
    assert "Saved." in _texts(app, "success")
    rows = read_ratings(store, "quality")  # the Parquet table was refreshed on submit
    assert sorted(rows["value"]) == [4.0, 5.0] and set(rows["comment"]) == {"clear enough"}
    assert set(rows["item_id"]) == {first.item.item_id}  # the item that was shown
    # The next item is shown: another item (another document, or the other run's output).
    following = RatingsDB.for_store(store).next_item("quality", "ann")
    assert following is not None and following.item.item_id != first.item.item_id
    assert _shown(app) == (following.item.prompt, following.outputs[0]) != shown_first

    app = _ok(_submit(app, "Skip this item"))
    assert "Skipped" in _texts(app, "success")
    progress = RatingsDB.for_store(store).rater_progress("quality", "ann")
    assert (progress.rated, progress.skipped, progress.remaining) == (1, 1, 6)


def test_second_tab_cannot_rate_twice(store: Path) -> None:
    tabs = [_sign_in(_ok(_page(store, "rate_rubric.py")), "bob") for _ in range(2)]
    assert _shown(tabs[0]) == _shown(tabs[1])  # both tabs show bob's next item
    for tab in tabs:
        tab.radio[0].set_value(3)
        tab.radio[1].set_value(3)
    first = _ok(_submit(tabs[0], "Submit"))
    second = _ok(_submit(tabs[1], "Submit"))
    assert "Saved." in _texts(first, "success")
    assert "already rated this item; it was not counted twice" in _texts(second, "warning")
    assert RatingsDB.for_store(store).rater_progress("quality", "bob").rated == 1
    assert len(read_ratings(store, "quality")) == 2  # two criteria, once


def test_pairwise_walkthrough_hides_run_names_until_the_vote(store: Path) -> None:
    app = _sign_in(_ok(_page(store, "rate_pairwise.py")), "cy")
    assert app.title[0].value == "Compare answers"
    before = _texts(app) + "".join(str(text.value) for text in app.text)
    assert "good" not in before.replace("goods", "") and "model-" not in before
    answer_a = app.text[1].value
    app.radio[0].set_value("A")
    app = _ok(_submit(app, "Submit vote"))
    revealed = _texts(app)
    assert "You chose: A is better" in revealed
    db = RatingsDB.for_store(store)
    (row,) = db.rating_rows("duel")[2]
    assert row.vote == "A" and row.rater == "cy"
    if row.display_order[0].startswith("gold:"):
        assert "written for this campaign" in revealed
    else:
        assert f"**A** was model-{row.display_order[0]}" in revealed
        assert f"**B** was model-{row.display_order[1]}" in revealed
    served_left = row.display_order[0]
    items = {item.item_id: item for item in db.items("duel")}
    assert items[row.item_id].outputs[items[row.item_id].runs.index(served_left)] == answer_a

    app = _ok(_submit(app, "Next pair"))
    assert "Answer A" in _texts(app, "markdown") and len(app.radio) == 1
    app = _ok(_submit(app, "Submit vote"))  # no choice made
    assert "Choose one of the four answers" in _texts(app, "warning")
    assert len(db.rating_rows("duel")[2]) == 1


def test_passcode_and_rater_list(store: Path) -> None:
    app = _page(store, "rate_pairwise.py", passcode="s3cret")
    app.text_input(key="human_name").input("dee")
    app.text_input(key="human_passcode").input("guess")
    app = _ok(_submit(app, "Start rating"))
    assert "passcode is not right" in _texts(app, "error")
    app.text_input(key="human_passcode").input("s3cret")
    app = _ok(_submit(app, "Start rating"))
    assert "Rating as **dee**" in _texts(app)

    with sqlite3.connect(store / "ratings.sqlite") as connection:
        connection.execute("UPDATE campaigns SET roster = '[\"ann\"]' WHERE campaign_id = 'duel'")
    app = _sign_in(_ok(_page(store, "rate_pairwise.py")), "mallory")
    assert "'mallory' is not on the rater list" in _texts(app, "error")
    assert check_passcode(None, "") and not check_passcode("a", "b")


def test_results_page(store: Path) -> None:
    db = RatingsDB.for_store(store)
    for name in ("ann", "bob"):
        rater = db.register_rater("duel", name)
        while (served := db.next_item("duel", rater)) is not None:
            # Prefer `good`, and answer the gold pairs as expected (a, b, both bad) to pass the checks.
            wanted = {"gold-001": "gold:a", "gold-002": "gold:b"}.get(served.item.item_id, "good")
            vote = (
                "both_bad" if served.item.item_id == "gold-003" else "AB"[served.display_order.index(wanted)]
            )
            db.submit(
                "duel", rater, served.item.item_id, {"preference": vote}, display_order=served.display_order
            )
    app = _ok(_page(store, "human_results.py"))
    assert app.title[0].value == "Human evaluation"
    app.selectbox(key="hr_campaign").set_value("duel").run()
    _ok(app)
    ratings_table = app.dataframe[0].value
    assert ratings_table["run_id"].iloc[0].startswith("model-good")  # best first, named
    assert any("Krippendorff" in str(frame.proto) for frame in app.dataframe)
    assert "Left answer wins" in str([metric.label for metric in app.metric])
    app.selectbox(key="hr_campaign").set_value("quality").run()
    assert "No ratings to analyse yet." in _texts(_ok(app), "info")


def test_pages_explain_missing_or_corrupt_databases(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    two_run_store(empty, documents=2)
    app = _ok(_page(empty, "rate_rubric.py"))
    assert "No rating campaigns" in _texts(app, "info")
    (empty / "ratings.sqlite").write_bytes(b"not sqlite at all" * 50)
    for script in ("rate_rubric.py", "rate_pairwise.py", "human_results.py"):
        assert "not a usable ratings database" in _texts(_ok(_page(empty, script)), "error")


def test_human_columns_on_the_leaderboard(store: Path) -> None:
    db = RatingsDB.for_store(store)
    for name, generous in (("ann", 0), ("bob", 1)):
        rater = db.register_rater("quality", name)
        while (served := db.next_item("quality", rater)) is not None:
            score = (4 if served.item.runs == ("good",) else 2) + generous
            answers = {"correctness": score, "clarity": 3}
            db.submit("quality", rater, served.item.item_id, answers, display_order=served.display_order)
        rater = db.register_rater("duel", name)
        while (served := db.next_item("duel", rater)) is not None:
            wanted = {"gold-001": "gold:a", "gold-002": "gold:b"}.get(served.item.item_id, "good")
            vote = (
                "both_bad" if served.item.item_id == "gold-003" else "AB"[served.display_order.index(wanted)]
            )
            db.submit(
                "duel", rater, served.item.item_id, {"preference": vote}, display_order=served.display_order
            )
    export_ratings(db, store)

    app = AppTest.from_file(str(VIEWS_DIR.parent / "app.py"), default_timeout=TIMEOUT)
    app.session_state[STORE_KEY] = str(store)
    table = _ok(app.run()).dataframe[0].value.set_index("run_id")
    assert table.loc["good", "human quality/correctness"] == 4.5
    assert table.loc["bad", "human quality/correctness"] == 2.5
    assert table.loc["good", "human quality/correctness 95% CI"] == "[4.50, 4.50]"
    assert table.loc["good", "human duel/rating"] > 1000 > table.loc["bad", "human duel/rating"]
    assert list(table.columns)[-1] == "created_at"  # human columns sit before the run's time and id
    app.toggle(key="lb_intervals").set_value(False).run()
    assert "human duel/rating 95% CI" not in _ok(app).dataframe[0].value.columns
    assert [page.title for page in PAGES][-3:] == ["Rate outputs", "Compare answers", "Human results"]
