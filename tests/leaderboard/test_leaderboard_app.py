"""Every page of the Streamlit app, run headless by `streamlit.testing.v1.AppTest` on a mock-model store."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

import harness
from harness.leaderboard.ui import PRIVATE_ENV, STORE_KEY
from harness.leaderboard.views import PAGES, VIEWS_DIR
from harness.ratings import RatingsDB
from harness.store import MARKER_NAME, ResultStore, RunRecord, SampleRecord, ScoreRecord

APP = Path(VIEWS_DIR).parent / "app.py"
TIMEOUT = 30
# Named, not the default suite: the pages' expectations below are about these four tasks.
TASKS = ["harness_prose_ppl", "harness_reading_mc", "harness_tone", "harness_facts_qa"]
# (model name, mock seed, experiment, step): two models, one of them at three checkpoints.
FIXTURE_RUNS = (
    ("mock-alpha", "0", "sft", 100),
    ("mock-alpha", "1", "sft", 200),
    ("mock-alpha", "2", "sft", 300),
    ("mock-beta", "3", "base", 100),
)


def _evaluate(store: Path, name: str, seed: str, experiment: str, step: int) -> str:
    report = harness.evaluate(
        model=f"mock:{seed}",
        model_args={"name": name},
        tasks=TASKS,
        store=store,
        experiment=experiment,
        step=step,
        bootstrap_resamples=100,
        use_cache=False,
    )
    return report.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lb-app") / "store"
    for name, seed, experiment, step in FIXTURE_RUNS:
        _evaluate(root, name, seed, experiment, step)
    return root


def open_app(store: Path, page: str | None = None) -> AppTest:
    """The app run on `store`, then on `views/<page>` when given; it must raise nothing."""
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.session_state[STORE_KEY] = str(store)
    app.run()
    if page is not None:
        app.switch_page(f"views/{page}").run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def _texts(app: AppTest) -> str:
    parts = []
    for kind in ("warning", "info", "error", "caption", "markdown"):
        for element in app.get(kind):
            assert isinstance(element, Element), element  # a message, not a container
            parts.append(str(element.value))
    return "\n".join(parts)


def test_every_registered_page_has_its_script() -> None:
    assert [page.title for page in PAGES][:6] == [
        "Leaderboard",
        "Trends",
        "Compare",
        "Samples",
        "Fairness",
        "Run details",
    ]
    assert all(page.path.is_file() for page in PAGES)


def test_leaderboard_page(store: Path) -> None:
    app = open_app(store)
    assert app.title[0].value == "Leaderboard"
    table = app.dataframe[0].value
    assert set(table["model"]) == {"mock-alpha", "mock-beta"}
    assert len(table) == len(FIXTURE_RUNS)
    assert {"harness_reading_mc", "harness_facts_qa", "harness_prose_ppl", "harness_tone"} <= set(
        table.columns
    )
    assert "average" not in table.columns  # primary metrics differ (acc, exact_match, perplexity)

    app.selectbox(key="lb_metric").set_value("acc").run()
    table = app.dataframe[0].value
    assert "average" in table.columns and "average 95% CI" in table.columns
    assert table["average"].is_monotonic_decreasing

    app.radio(key="lb_rows").set_value("models").run()
    assert sorted(app.dataframe[0].value["model"]) == ["mock-alpha", "mock-beta"]

    app.text_input(key="lb_search").input("beta").run()
    assert app.dataframe[0].value["model"].tolist() == ["mock-beta"]
    app.text_input(key="lb_search").input("no such model").run()
    assert "No scores match" in _texts(app)
    assert not app.get("download_button")


def test_leaderboard_offers_csv_download(store: Path) -> None:
    app = open_app(store)
    buttons = app.get("download_button")
    assert len(buttons) == 1
    assert "Download CSV" in str(buttons[0].proto)


def test_trends_page(store: Path) -> None:
    app = open_app(store, "trends.py")
    app.selectbox(key="trend_task").set_value("harness_reading_mc").run()
    app.selectbox(key="trend_metric").set_value("acc").run()
    assert not app.exception
    frame = app.dataframe[0].value
    assert frame[frame["experiment"] == "sft"]["step"].tolist() == [100, 200, 300]
    assert frame[frame["experiment"] == "base"]["step"].tolist() == [100]
    (chart,) = app.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["area", "line"]  # band, then line


def test_compare_page(store: Path) -> None:
    app = open_app(store, "compare.py")
    differences = app.dataframe[0].value
    assert {"task", "metric", "difference", "ci_low", "ci_high", "verdict"} <= set(differences.columns)
    # Every task × metric of the built-in suite is paired; derived scores (if stored) are not.
    tests = differences.set_index(["task", "metric"])["test"]
    assert tests[("harness_reading_mc", "acc")] == "mcnemar"
    assert tests[("harness_prose_ppl", "word_perplexity")] == "paired_bootstrap"
    assert len(differences) >= 9
    assert set(differences["verdict"]) <= {"candidate better", "candidate worse", "no clear difference"}
    app.selectbox(key="cmp_task").set_value("harness_facts_qa").run()
    disagreements = app.dataframe[1].value
    assert {"prompt", "baseline_output", "candidate_output", "target"} <= set(disagreements.columns)
    assert (disagreements["baseline_output"] != disagreements["candidate_output"]).all()
    texts = [element.value for element in app.text]
    assert any("Question:" in text for text in texts)  # the selected document's prompt


def test_samples_page(store: Path) -> None:
    app = open_app(store, "samples.py")
    app.selectbox(key="smp_task").set_value("harness_reading_mc").run()
    app.selectbox(key="smp_metric").set_value("acc").run()
    everything = app.dataframe[0].value
    app.radio(key="smp_correct").set_value("correct").run()
    correct = app.dataframe[0].value
    assert 0 < len(correct) < len(everything)
    assert (correct["value"] == 1.0).all()
    app.radio(key="smp_correct").set_value("all").run()
    app.text_input(key="smp_search").input("lantern").run()
    found = app.dataframe[0].value
    assert 0 < len(found) < len(everything)
    assert found["prompt"].str.lower().str.contains("lantern").all()


def test_fairness_page(store: Path) -> None:
    app = open_app(store, "fairness.py")
    # Only harness_facts_qa has a group field (its question category).
    assert app.selectbox(key="fair_task").value == "harness_facts_qa"
    table = app.dataframe[0].value
    assert sorted(table["group"]) == ["arithmetic", "general", "geography", "language", "science"]
    assert table["n"].sum() == 88
    labels = [metric.label for metric in app.metric]
    assert labels == ["Gap (max − min)", "Ratio (min / max)", "Best / worst group"]


def test_run_details_page(store: Path) -> None:
    app = open_app(store, "run_details.py")
    provenance = app.json[0].value
    assert json.loads(provenance)["adapter"] == "mock"
    fields = app.dataframe[0].value.set_index("field")["value"]
    assert fields["model"] in {"mock-alpha", "mock-beta"}
    counts = app.dataframe[2].value
    assert counts.set_index("task")["samples"].to_dict()["harness_facts_qa"] == 88


def test_new_runs_appear_without_restart(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _evaluate(root, "mock-first", "5", "late", 1)
    app = open_app(root)
    assert app.dataframe[0].value["model"].tolist() == ["mock-first"]
    _evaluate(root, "mock-second", "6", "late", 2)
    app.run()
    assert sorted(app.dataframe[0].value["model"]) == ["mock-first", "mock-second"]


@pytest.mark.parametrize("page", [page.script for page in PAGES])
def test_bad_stores_are_explained_on_every_page(tmp_path: Path, page: str) -> None:
    missing = tmp_path / "missing"
    app = open_app(missing, page)
    assert "There is no results store" in _texts(app)
    if page.startswith("rate_"):  # raters see it before signing in: no path of the server's
        assert str(tmp_path) not in _texts(app)
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / MARKER_NAME).write_text(json.dumps({"schema_version": 99, "format": "harness-store"}))
    app.session_state[STORE_KEY] = str(newer)
    app.run()
    assert not app.exception and "newer" in _texts(app)
    empty = tmp_path / "empty"
    empty.mkdir()
    app.session_state[STORE_KEY] = str(empty)
    app.run()
    assert not app.exception and "empty" in _texts(app)


def test_run_with_missing_samples_keeps_the_rest_working(tmp_path: Path) -> None:
    root = tmp_path / "store"
    broken = _evaluate(root, "mock-broken", "7", "x", 1)
    _evaluate(root, "mock-fine", "8", "x", 2)
    (root / "samples" / f"part-{broken}.parquet").unlink()
    app = open_app(root)
    assert sorted(app.dataframe[0].value["model"]) == ["mock-broken", "mock-fine"]
    app.switch_page("views/samples.py").run()
    app.selectbox(key="smp_run").set_value(broken).run()
    assert not app.exception
    assert "no samples table part" in _texts(app)
    app.switch_page("views/run_details.py").run()
    app.selectbox(key="details_run").set_value(broken).run()
    assert not app.exception
    assert json.loads(app.json[0].value)["adapter"] == "mock"  # the run itself is still shown
    assert "no samples table part" in _texts(app)


# -- the store fixed at launch, private results, user text as text -----------------------------------


def test_the_store_is_fixed_at_launch(store: Path) -> None:
    app = open_app(store)
    assert not [box for box in app.sidebar.text_input]  # no path box a visitor could point elsewhere
    assert any(caption.value == "Results store: store" for caption in app.sidebar.caption)
    assert str(store.parent) not in str([caption.value for caption in app.sidebar.caption])


def _results_texts(app: AppTest) -> str:
    return _texts(app).replace("\\", "")


@pytest.mark.parametrize("page", [None, "samples.py", "run_details.py", "compare.py", "human_results.py"])
def test_a_private_app_asks_for_a_viewer_token(
    store: Path, page: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PRIVATE_ENV, "1")
    db = RatingsDB.for_store(store)
    viewer = db.add_viewer(f"viewer for {page}").token
    app = open_app(store, page)
    assert not app.dataframe and not app.json  # no results before signing in
    assert "results on this server are private" in _results_texts(app)
    assert "mock-alpha" not in str([str(node.proto) for node in app.main])
    app.text_input(key="viewer_token").input("x" * 43)
    (sign_in,) = [button for button in app.button if button.label == "Sign in"]
    sign_in.click().run()
    assert "viewer token is not valid" in _results_texts(app) and not app.dataframe
    app.text_input(key="viewer_token").input(viewer)
    (sign_in,) = [button for button in app.button if button.label == "Sign in"]
    sign_in.click().run()
    assert not app.exception
    assert "private" not in _results_texts(app)
    if page != "human_results.py":  # that page has no campaigns in this store to show
        assert app.dataframe or app.json
    assert any("Viewing as viewer for" in str(caption.value) for caption in app.sidebar.caption)


def test_a_viewer_link_signs_in_and_a_rater_token_does_not(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PRIVATE_ENV, "1")
    db = RatingsDB.for_store(store)
    viewer = db.add_viewer("linked").token
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.session_state[STORE_KEY] = str(store)
    app.query_params["token"] = viewer
    app.run()
    assert not app.exception and app.dataframe and "token" not in app.query_params
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.session_state[STORE_KEY] = str(store)
    app.query_params["token"] = "R" * 43  # a rater's, or anybody's: not a viewer token
    app.run()
    assert not app.dataframe and "viewer token is not valid" in _results_texts(app)


def test_user_text_on_the_results_pages_is_shown_as_text(tmp_path: Path) -> None:
    """Model, experiment, group and metric-bearing text with Markdown/HTML never renders live."""
    root = tmp_path / "store"
    evil = "![m](http://203.0.113.9/m.png)<img src=http://203.0.113.9/i.png>[x](http://e)"
    sample = SampleRecord(
        run_id="evil-run",
        task="qa",
        doc_id=0,
        prompt=f"prompt {evil}",
        target="t",
        prediction=f"output {evil}",
        choice_logprobs=None,
        statistics={"exact_match/match": 0.0, "exact_match/count": 1.0},
        group=f"group {evil}",
    )
    score = ScoreRecord("evil-run", "qa", "1", "exact_match", 0.0, None, None, None, 1, True, "em")
    run = RunRecord(
        run_id="evil-run",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        model=f"model {evil}",
        model_fingerprint="f",
        experiment=f"exp {evil}",
        step=1,
        tasks=("qa",),
    )
    ResultStore(root).write_run(run, [score], [sample])
    live = re.compile(r"(?<!\\)\]\((?:http|//)|(?<!\\)<img")
    for page in ("samples.py", "run_details.py"):
        app = open_app(root, page)
        shown = [
            str(element.value)
            for kind in ("markdown", "caption", "info", "warning")
            for element in app.get(kind)
            if isinstance(element, Element)
        ]
        assert not [text for text in shown if live.search(text)], shown
        if page == "samples.py":
            (heading,) = [text for text in shown if text.startswith("**Prompt**")]
            assert heading.replace("\\", "") == f"**Prompt** (group: group {evil})"
            assert f"output {evil}" in [text.value for text in app.text]  # sample text as st.text
