"""The rating pages, run headless by Streamlit's AppTest: raters sign in with their own tokens and walk
through both modes; nothing before a pairwise vote names a run; user text never renders as Markdown."""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from harness.leaderboard.ui import STORE_KEY
from harness.leaderboard.views import PAGES, VIEWS_DIR
from harness.ratings import (
    RatingsDB,
    RatingsError,
    export_ratings,
    load_gold,
    load_rubric,
    plan_campaign,
    read_ratings,
)
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


def _page(store: Path, script: str, *, token: str | None = None) -> AppTest:
    app = AppTest.from_file(str(VIEWS_DIR / script), default_timeout=TIMEOUT)
    app.session_state[STORE_KEY] = str(store)
    if token is not None:
        app.query_params["token"] = token  # opened from the invitation link
    return app.run()


def _ok(app: AppTest) -> AppTest:
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def _token(store: Path, campaign: str, rater: str) -> str:
    return RatingsDB.for_store(store).invite(campaign, rater).token


def _sign_in(app: AppTest, token: str) -> AppTest:
    app.text_input(key="human_token").input(token)
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
            # As rendered: user text arrives as backslash-escaped Markdown.
            parts.append(str(element.value).replace("\\", ""))
    return "\n".join(parts)


def test_rubric_walkthrough(store: Path) -> None:
    app = _ok(_page(store, "rate_rubric.py"))
    assert app.title[0].value == "Rate outputs"
    assert not app.radio  # nothing to rate before signing in
    app = _sign_in(app, _token(store, "quality", "Ann"))
    assert "Rating as ann" in _texts(app)
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
    token = _token(store, "quality", "bob")
    tabs = [_sign_in(_ok(_page(store, "rate_rubric.py")), token) for _ in range(2)]
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
    app = _ok(_page(store, "rate_pairwise.py", token=_token(store, "duel", "cy")))
    assert app.title[0].value == "Compare answers"
    assert "token" not in app.query_params  # the token leaves the address bar once read
    before = _texts(app) + "".join(str(text.value) for text in app.text)
    assert "good" not in before.replace("goods", "") and "model-" not in before
    _assert_blind(app)
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


def _leaves(node: Any) -> list[Any]:
    children = getattr(node, "children", None)
    if not children:
        return [node]
    own = [node] if getattr(node, "proto", None) is not None else []
    return own + [leaf for child in children.values() for leaf in _leaves(child)]


def _assert_blind(app: AppTest) -> None:
    """No widget key, element id or text of the page before a vote names a run, model or item id."""
    db = RatingsDB.for_store(Path(str(app.session_state[STORE_KEY])))
    # The runs are named good and bad ("Both are bad" is a vote), so look for their ids as item ids
    # carry them (qa/3/good~bad), their model names, and gold items' ids.
    secrets = {"model-good", "model-bad", "gold-", "good~", "~bad", "/good", "/bad"}
    secrets |= {item.item_id for item in db.items("duel")}
    # Every element's protobuf as sent to the browser: texts, labels, widget ids (keys) and form ids.
    sent = [str(node.proto) for node in _leaves(app.main)] + [
        str(node.proto) for node in _leaves(app.sidebar)
    ]
    assert any("rp-" in text for text in sent)  # the vote widget's key is there, and opaque
    for text in sent:
        leaked = [secret for secret in secrets if secret in text.replace("goods", "")]
        assert not leaked, (leaked, text[:300])


def test_raters_sign_in_with_their_own_tokens(store: Path) -> None:
    ann, bob = _token(store, "duel", "ann"), _token(store, "duel", "bob")
    db = RatingsDB.for_store(store)
    assert db.identify(ann).name == "ann" and db.identify(bob).name == "bob"
    app = _ok(_page(store, "rate_pairwise.py"))
    assert not app.text_input(key="human_token").value
    assert not [box for box in app.text_input if "name" in str(box.label).lower()]  # no name to type
    app = _sign_in(app, "not-a-token")
    assert "not a sign-in token" in _texts(app, "error") and not app.radio
    app = _sign_in(app, "x" * 43)  # well formed, but nobody's
    assert "token is not valid" in _texts(app, "error") and not app.radio
    app = _sign_in(app, bob)
    assert "Rating as bob" in _texts(app) and len(app.radio) == 1
    app.radio[0].set_value("B")
    _ok(_submit(app, "Submit vote"))
    (row,) = db.rating_rows("duel")[2]
    assert row.rater == "bob"  # the token said who rated, nothing typed did

    # A new invitation voids the old token, also in a session already signed in with it.
    _token(store, "duel", "bob")
    app = _ok(_submit(app, "Next pair"))
    assert "token is not valid" in _texts(app, "error") and not app.radio

    # A rubric token opens the rubric page only; the pairwise page points there.
    app = _ok(_page(store, "rate_pairwise.py", token=_token(store, "quality", "ann")))
    assert "for the rubric campaign quality" in _texts(app, "info") and not app.radio


def test_rater_list_applies_to_invitations(store: Path) -> None:
    with sqlite3.connect(store / "ratings.sqlite") as connection:
        connection.execute("UPDATE campaigns SET roster = '[\"ann\"]' WHERE campaign_id = 'duel'")
    with pytest.raises(RatingsError, match="'mallory' is not on the rater list"):
        _token(store, "duel", "mallory")
    assert RatingsDB.for_store(store).identify(_token(store, "duel", "Ann")).name == "ann"


def test_user_text_is_shown_as_text(store: Path) -> None:
    """A campaign description, prompts and outputs with Markdown and HTML arrive as literal text."""
    evil = "![x](http://198.51.100.7/x.png) <img src=http://198.51.100.7/y.png> **bold** [a](http://e)"
    with sqlite3.connect(store / "ratings.sqlite") as connection:
        connection.execute("UPDATE campaigns SET description = ? WHERE campaign_id = 'duel'", (evil,))
    app = _ok(_page(store, "rate_pairwise.py", token=_token(store, "duel", "eve")))
    captions = [str(caption.value) for caption in app.caption]
    (shown,) = [caption for caption in captions if "198" in caption]
    assert not re.search(r"(?<!\\)[!\[\]()<>*]", shown)  # every Markdown/HTML character escaped
    assert shown.replace("\\", "") == evil  # and shown as written
    live = re.compile(r"(?<!\\)\]\((?:http|//)|(?<!\\)<img")  # a live link/image, or raw HTML
    for kind in ("markdown", "caption", "info", "warning", "error", "success"):
        for element in app.get(kind):
            assert isinstance(element, Element)
            assert not live.search(str(element.value)), element.value


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
    assert "not a usable ratings database" in _texts(
        _ok(_page(empty, "rate_pairwise.py", token="x" * 43)), "error"
    )


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


def test_a_database_given_with_db_is_the_one_the_app_uses(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`harness ratings ... --db FILE` and `harness leaderboard --ratings-db FILE` name one database."""
    shared = tmp_path / "shared" / "ratings.sqlite"
    shared.parent.mkdir()
    RatingsDB.for_store(store).path.rename(shared)  # the campaigns now live outside the store
    token = RatingsDB(shared).invite("quality", "Ann").token

    app = _ok(_page(store, "rate_rubric.py"))
    assert "No rating campaigns in this store yet" in _texts(app, "info")

    monkeypatch.setattr(sys, "argv", [sys.argv[0], "--store", str(store), "--ratings-db", str(shared)])
    app = _sign_in(_ok(_page(store, "rate_rubric.py")), token)
    assert "Rating as ann" in _texts(app)
