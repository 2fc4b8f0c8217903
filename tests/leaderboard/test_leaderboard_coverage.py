"""Issue 16's leaderboard: coverage tiers, blanks, metric arrows, the heat map and chart, the CSV with
human columns, Compare's direction marks and Markdown report, multiple-choice option texts."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

import harness
from harness.compare import REPORT_COLUMNS
from harness.gate_command import COLUMNS as GATE_COLUMNS
from harness.leaderboard.diff import TaskDifferences, differences_markdown, unpaired_differences, verdicts
from harness.leaderboard.heatmap import HEATMAP_CLASS, heatmap_html
from harness.leaderboard.human import human_by_run
from harness.leaderboard.ranking import (
    AVERAGE,
    MEAN_RANK,
    RANK,
    TASK_COUNT,
    TIER,
    build_leaderboard,
    comparable_rows,
    display_table,
)
from harness.leaderboard.sample_output import option_texts, sample_output
from harness.leaderboard.samples_view import sample_table
from harness.leaderboard.score_chart import score_chart_spec
from harness.leaderboard.synthetic import generate_store, task_names
from harness.leaderboard.views.leaderboard import csv_bytes
from harness.ratings import RatingsDB, export_ratings, load_rubric, plan_campaign, read_ratings
from harness.store import (
    Provenance,
    ResultStore,
    RunRecord,
    ScoreRecord,
    list_store,
    load_samples,
    load_store,
)
from tests.leaderboard.test_leaderboard_app import open_app
from tests.ratings.test_ratings_support import RUBRIC_PATH, two_run_store


def _score(run_id: str, task: str, value: float, metric: str = "acc", higher: bool = True) -> ScoreRecord:
    return ScoreRecord(
        run_id=run_id,
        task=task,
        task_version="1",
        metric=metric,
        value=value,
        stderr=0.01,
        ci_low=value - 0.0196,
        ci_high=value + 0.0196,
        n=1000,
        higher_is_better=higher,
        signature=f"{metric}|harness:test",
    )


def _write(store: ResultStore, run_id: str, hour: int, values: dict[str, float], model: str) -> None:
    run = RunRecord(
        run_id=run_id,
        created_at=datetime(2026, 3, 1, hour, tzinfo=UTC),
        model=model,
        model_fingerprint=run_id,
        experiment="exp",
        step=None,
        tasks=tuple(values),
        provenance=Provenance(),
    )
    store.write_run(run, [_score(run_id, task, value) for task, value in values.items()], [])


def _mixed_store(root: Path) -> pd.DataFrame:
    """Two full runs over a, b, c; a one-task run (`harness score`-like) far better on a; a run of a, b."""
    store = ResultStore(root)
    _write(store, "full-1", 1, {"a": 0.60, "b": 0.60, "c": 0.60}, "full-one")
    _write(store, "full-2", 2, {"a": 0.50, "b": 0.70, "c": 0.40}, "full-two")
    _write(store, "one-task", 3, {"a": 0.99}, "scored")
    _write(store, "two-tasks", 4, {"a": 0.30, "b": 0.95}, "pair")
    return load_store(list_store(root)).scores


def test_a_one_task_run_is_never_ranked_above_a_full_run(tmp_path: Path) -> None:
    scores = _mixed_store(tmp_path / "store")
    board = build_leaderboard(scores, metric="acc")
    table = board.table.set_index("run_id")
    # Tiers by coverage: the full runs first, then the run of two tasks, then the one-task run.
    assert board.table["run_id"].tolist() == ["full-1", "full-2", "two-tasks", "one-task"]
    assert table[TIER].to_dict() == {"full-1": 1, "full-2": 1, "two-tasks": 2, "one-task": 3}
    assert table[TASK_COUNT].to_dict() == {"full-1": 3, "full-2": 3, "two-tasks": 2, "one-task": 1}
    # Averages, mean ranks and ranks are over each tier's own tasks, among that tier's rows only.
    assert table.loc["full-1", AVERAGE] == pytest.approx(0.60)
    assert table.loc["full-2", MEAN_RANK] == pytest.approx((2 + 1 + 2) / 3)
    assert table.loc["one-task", AVERAGE] == pytest.approx(0.99) and table.loc["one-task", MEAN_RANK] == 1
    assert table.loc["full-1", RANK] == 1 and table.loc["one-task", RANK] == 1
    # The full runs' numbers are exactly those of a store without the partial runs.
    alone = build_leaderboard(scores[scores["run_id"].str.startswith("full")], metric="acc").table
    pd.testing.assert_frame_equal(
        board.table[board.table[TIER] == 1].drop(columns=TIER).reset_index(drop=True),
        alone.drop(columns=TIER),
    )
    # The default view lists only the rows covering every task; the others are one toggle away.
    assert comparable_rows(board).table["run_id"].tolist() == ["full-1", "full-2"]
    assert len(comparable_rows(board, include_partial=True).table) == 4
    assert TIER in display_table(board).columns and TIER not in display_table(comparable_rows(board)).columns
    # Ranking by mean rank keeps the tiers too; ranking by one task ranks every row that has it.
    by_mean = build_leaderboard(scores, metric="acc", rank_by=MEAN_RANK)
    assert by_mean.table["run_id"].tolist()[:2] == ["full-1", "full-2"]
    by_a = build_leaderboard(scores, metric="acc", rank_by="a")
    assert by_a.table["run_id"].tolist()[0] == "one-task"


def test_no_row_covering_everything_shows_every_tier(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    _write(store, "left", 1, {"a": 0.5}, "left")
    _write(store, "right", 2, {"b": 0.9}, "right")
    board = build_leaderboard(load_store(list_store(store.root)).scores, metric="acc")
    assert len(comparable_rows(board).table) == 2
    assert board.table[RANK].tolist() == [1, 1]  # each alone in its tier


def test_synthetic_partial_runs_sit_below_every_full_run(tmp_path: Path) -> None:
    generate_store(
        tmp_path, runs=4, tasks=3, samples=30, experiments=2, bootstrap_resamples=0, partial_runs=2
    )
    data = load_store(list_store(tmp_path))
    assert set(data.scores.loc[data.scores["run_id"].str.contains("partial"), "task"]) == set(
        task_names(3)[:2]
    )
    board = build_leaderboard(data.scores)
    ids = board.table["run_id"].tolist()
    assert all(run.startswith("synth-partial") for run in ids[4:]) and len(ids) == 6
    assert comparable_rows(board).table[TASK_COUNT].eq(3).all()


def test_metric_direction_comes_from_the_registry(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    # A writer that got the direction wrong: the registry knows perplexity is lower-is-better.
    for hour, (run_id, value) in enumerate((("low", 10.0), ("high", 20.0))):
        run = RunRecord(run_id, datetime(2026, 3, 1, hour, tzinfo=UTC), run_id, run_id, "exp", None, ("p",))
        store.write_run(run, [_score(run_id, "p", value, "word_perplexity", higher=True)], [])
    scores = load_store(list_store(store.root)).scores
    board = build_leaderboard(scores)
    assert board.higher_is_better["p"] is False and board.table["run_id"].tolist()[0] == "low"
    differences = unpaired_differences(scores, "high", "low")
    assert verdicts(differences).tolist() == ["candidate better"]  # perplexity fell


def test_markdown_report_reads_like_the_gate(tmp_path: Path) -> None:
    scores = _mixed_store(tmp_path / "store")
    table = unpaired_differences(scores, "full-2", "full-1")
    report = differences_markdown(TaskDifferences(table, "unpaired"), "full-2", "full-1")
    lines = report.splitlines()
    assert lines[0] == "### harness compare: candidate `full-1` vs baseline `full-2`"
    assert "2 better, 1 worse, 0 without a clear difference" in lines[2]
    assert REPORT_COLUMNS == GATE_COLUMNS  # the gate's columns, in the gate's order
    assert lines[4] == "|  | " + " | ".join(REPORT_COLUMNS) + " | better |"
    rows = {line.split(" | ")[1]: line for line in lines[6:]}
    assert rows["a"].startswith("| ✅ | a | acc | 0.5000 | 0.6000 | +0.1000 | [+0.0")
    assert rows["b"].startswith("| ❌ | b |") and rows["b"].endswith("| –/1000/1000 | unpaired_normal | ↑ |")


def test_heatmap_escapes_store_strings_and_shows_every_task(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    _write(store, "r1", 1, {"a<i>": 0.5, "b": 0.7}, "<script>alert(1)</script>")
    _write(store, "r2", 2, {"a<i>": 0.6, "b": 0.2}, "**bold**")
    board = build_leaderboard(load_store(list_store(store.root)).scores, metric="acc")
    html = heatmap_html(board)
    assert HEATMAP_CLASS in html and "<script>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "a&lt;i&gt;<br>acc ↑" in html
    assert 'title="b · acc ↑ (higher is better)"' in html and "average ↑" in html and "mean rank ↓" in html
    assert html.count("<tr>") == 3 and heatmap_html(board, max_rows=1).count("<tr>") == 2  # header + rows
    frame, spec = score_chart_spec(board, AVERAGE)
    assert len(frame) == 2 and frame["ci_low"].lt(frame["value"]).all()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "rule"]


def test_option_texts_name_the_chosen_option(tmp_path: Path) -> None:
    assert sample_output(None, [-3.0, -1.0], json.dumps({"choices": ["yes", "no"]})) == (
        "no (option 1, logprob -1.00 of 2 options)"
    )
    assert sample_output(None, [-3.0, -1.0], "{}") == "option 1 (logprob -1.00 of 2 options)"  # older samples
    assert sample_output("generated", None, None) == "generated" and option_texts("not json") == ()
    report = harness.evaluate(
        "mock:0", ["harness_reading_mc"], store=tmp_path, limit=5, bootstrap_resamples=0, use_cache=False
    )
    samples = load_samples(tmp_path, report.run_id, "harness_reading_mc")
    choices = [option_texts(meta) for meta in samples["metadata"]]
    assert all(len(options) >= 2 for options in choices)
    outputs = sample_table(samples, "acc")["output"]
    assert not outputs.str.startswith("option ").any()
    assert all(
        output.split(" (option ")[0] in options for output, options in zip(outputs, choices, strict=True)
    )


@pytest.fixture(scope="module")
def rated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lb-coverage") / "store"
    good, bad = two_run_store(root, documents=4)
    db = RatingsDB.for_store(root)
    plan = plan_campaign(
        ResultStore(root),
        campaign_id="quality",
        mode="rubric",
        runs=[good, bad],
        rubric=load_rubric(RUBRIC_PATH),
        overlap=1,
    )
    db.create_campaign(plan.campaign, plan.items)
    rater = db.register_rater("quality", "ann")
    while (served := db.next_item("quality", rater)) is not None:
        answers = {"correctness": 4 if served.item.runs == (good,) else 2, "clarity": 3}
        db.submit("quality", rater, served.item.item_id, answers, display_order=served.display_order)
    export_ratings(db, root)
    db.close()
    return root


def test_csv_has_the_human_rating_columns(rated_store: Path) -> None:
    board = build_leaderboard(load_store(list_store(rated_store)).scores)
    frame = pd.read_csv(io.BytesIO(csv_bytes(board, human_by_run(read_ratings(rated_store))))).set_index(
        "run_id"
    )
    assert frame.loc["good", "human quality/correctness"] == 4.0
    assert frame.loc["bad", "human quality/correctness"] == 2.0
    assert frame.loc["good", "human quality/correctness 95% CI"] == "[4.00, 4.00]"
    assert {"qa", "qa ci_low", "qa ci_high", TIER, TASK_COUNT} <= set(frame.columns)


def test_page_blanks_arrows_coverage_and_views(tmp_path: Path) -> None:
    _mixed_store(tmp_path / "store")
    app = open_app(tmp_path / "store")
    grid = app.dataframe[0]
    assert grid.proto.placeholder == ""  # missing values show as blank cells, never "None"
    assert grid.value["run_id"].tolist() == ["full-1", "full-2"]
    headers = {name: spec.get("label") for name, spec in json.loads(grid.proto.columns).items()}
    assert (
        headers["a"] == "a · acc ↑"
        and headers[AVERAGE] == "average ↑"
        and headers[MEAN_RANK] == "mean rank ↓"
    )
    assert headers[TASK_COUNT] == "coverage"
    assert "2 runs covering fewer tasks are hidden" in "\n".join(str(c.value) for c in app.caption)
    app.toggle(key="lb_partial").set_value(True).run()
    table = app.dataframe[0].value
    assert table["run_id"].tolist() == ["full-1", "full-2", "two-tasks", "one-task"]
    assert table[TIER].tolist() == [1, 1, 2, 3]
    app.radio(key="lb_view").set_value("heat map").run()
    assert not app.exception and not app.dataframe
    assert HEATMAP_CLASS in app.get("html")[0].proto.body
    app.radio(key="lb_view").set_value("chart").run()
    spec = json.loads(app.get("vega_lite_chart")[0].proto.spec)
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "rule"]


def test_compare_page_marks_and_markdown(tmp_path: Path) -> None:
    _mixed_store(tmp_path / "store")
    app = open_app(tmp_path / "store", "compare.py")
    table = app.dataframe[0].value
    assert list(table.columns[:4]) == ["mark", "task", "metric", "better"]
    assert set(table["mark"]) <= {"✅", "❌", "➖"} and set(table["better"]) == {"↑"}
    assert app.dataframe[0].proto.placeholder == ""
    buttons = [button for button in app.get("download_button") if "Markdown" in str(button.proto)]
    assert len(buttons) == 1
