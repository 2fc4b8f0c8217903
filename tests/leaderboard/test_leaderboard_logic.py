"""The leaderboard's plain functions: reading the store, ranking, trends, diffs, samples, groups, CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.cli import build_parser
from harness.errors import HarnessError
from harness.leaderboard.diff import (
    PAIRED,
    UNPAIRED,
    disagreements,
    task_differences,
    unpaired_differences,
    verdicts,
)
from harness.leaderboard.groups import group_report, stored_fairness_scores
from harness.leaderboard.ranking import (
    AVERAGE,
    MEAN_RANK,
    RANK,
    LeaderboardFilters,
    build_leaderboard,
    display_table,
    primary_metrics,
    rank_groups,
)
from harness.leaderboard.sample_metrics import metric_names, per_sample_values, subset_score
from harness.leaderboard.samples_view import SampleFilters, filter_samples, is_binary, sample_table
from harness.leaderboard.synthetic import generate_store, task_names
from harness.leaderboard.trends import trend_frame
from harness.leaderboard_command import streamlit_command
from harness.store import (
    MARKER_NAME,
    Provenance,
    ResultStore,
    RunRecord,
    SampleRecord,
    ScoreRecord,
    list_store,
    load_samples,
    load_store,
    sample_counts,
)


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lb-logic") / "store"
    generate_store(root, runs=8, tasks=3, samples=60, experiments=2, bootstrap_resamples=50)
    return root


def _score(run_id: str, task: str, value: float, stderr: float, metric: str = "acc") -> ScoreRecord:
    return ScoreRecord(
        run_id=run_id,
        task=task,
        task_version="1",
        metric=metric,
        value=value,
        stderr=stderr,
        ci_low=value - 1.96 * stderr,
        ci_high=value + 1.96 * stderr,
        n=100,
        higher_is_better=True,
        signature=f"{metric}|harness:test",
    )


def _run(run_id: str, model: str, hour: int, experiment: str = "exp", step: int | None = None) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        created_at=datetime(2026, 3, 1, hour, tzinfo=UTC),
        model=model,
        model_fingerprint=model,
        experiment=experiment,
        step=step,
        tasks=("a", "b"),
        provenance=Provenance.from_dict({"seed": hour}),
    )


# -- reading the store -----------------------------------------------------------------------------


def test_load_store_reads_every_committed_run(synthetic_store: Path) -> None:
    data = load_store(list_store(synthetic_store))
    expected = ResultStore(synthetic_store).scores()
    assert data.error is None and not data.problems
    assert len(data.runs) == 8
    assert len(data.scores) == len(expected) == 8 * 4  # mc task: acc + acc_norm; generation; perplexity
    merged = data.scores.merge(expected, on=["run_id", "task", "metric"], suffixes=("", "_store"))
    np.testing.assert_allclose(merged["value"], merged["value_store"])
    assert set(data.scores["model"]) == {"synth-model-0", "synth-model-1"}


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda root: None, "There is no results store"),
        (lambda root: root.mkdir(), "is empty"),
        (
            lambda root: (
                root.mkdir(),
                (root / MARKER_NAME).write_text('{"schema_version": 99, "format": "harness-store"}'),
            ),
            "newer",
        ),
        (lambda root: (root.mkdir(), (root / "notes.txt").write_text("x")), "not a harness results store"),
    ],
    ids=["missing", "empty", "newer-schema", "foreign-directory"],
)
def test_bad_stores_are_explained_not_raised(
    tmp_path: Path, make: Callable[[Path], object], phrase: str
) -> None:
    root = tmp_path / "store"
    make(root)
    data = load_store(list_store(root))
    assert data.error is not None and phrase in data.error
    assert data.empty


def test_missing_tables_are_problems_for_that_run_only(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ids = generate_store(root, runs=3, tasks=2, samples=10, bootstrap_resamples=0)
    (root / "scores" / f"part-{ids[0]}.parquet").unlink()
    (root / "samples" / f"part-{ids[1]}.parquet").unlink()
    # A writer killed before its runs part: parts without a runs row stay invisible.
    orphan = root / "scores" / "part-orphan.parquet"
    orphan.write_bytes((root / "scores" / f"part-{ids[2]}.parquet").read_bytes())
    data = load_store(list_store(root))
    assert data.error is None
    assert any(ids[0] in problem and "no scores" in problem for problem in data.problems)
    assert set(data.scores["run_id"]) == {ids[1], ids[2]}
    assert data.runs_without_samples == frozenset({ids[1]})
    with pytest.raises(HarnessError, match="no samples table part"):
        load_samples(root, ids[1])
    with pytest.raises(HarnessError, match="not a completed run"):
        load_samples(root, "orphan")


def test_unreadable_part_is_skipped_and_named(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ids = generate_store(root, runs=2, tasks=1, samples=10, bootstrap_resamples=0)
    (root / "scores" / f"part-{ids[0]}.parquet").write_bytes(b"not parquet at all")
    data = load_store(list_store(root))
    assert set(data.scores["run_id"]) == {ids[1]}
    assert any(ids[0] in problem and "unreadable" in problem for problem in data.problems)


@pytest.mark.parametrize("old_part_is_newest", [False, True])
def test_parts_written_before_a_column_existed_still_read(tmp_path: Path, old_part_is_newest: bool) -> None:
    root = tmp_path / "store"
    ids = generate_store(root, runs=3, tasks=1, samples=10, bootstrap_resamples=0)
    old = root / "scores" / f"part-{ids[1]}.parquet"
    pq.write_table(pq.read_table(old).drop_columns(["task_version"]), old)
    newest = max(path.stat().st_mtime_ns for path in old.parent.iterdir()) + 10**9
    oldest = min(path.stat().st_mtime_ns for path in old.parent.iterdir()) - 10**9
    stamp = newest if old_part_is_newest else oldest
    os.utime(old, ns=(stamp, stamp))
    data = load_store(list_store(root))
    assert not data.problems
    versions = data.scores.set_index("run_id")["task_version"]
    assert versions[ids[0]].tolist() == ["1.0", "1.0"] and versions[ids[1]].isna().all()
    assert len(data.scores) == 3 * 2


def test_listing_changes_when_a_run_is_committed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    generate_store(root, runs=1, tasks=1, samples=5, bootstrap_resamples=0)
    before = list_store(root)
    assert before == list_store(root)  # stable key: cached reads are reused
    ResultStore(root).write_run(_run("late-run", "m", 5), [_score("late-run", "a", 0.5, 0.05)], [])
    after = list_store(root)
    assert after != before
    assert "late-run" in set(load_store(after).runs["run_id"])


def test_samples_and_counts(synthetic_store: Path) -> None:
    run_id = load_store(list_store(synthetic_store)).runs["run_id"].iloc[0]
    task = task_names(3)[1]
    samples = load_samples(synthetic_store, run_id, task)
    assert len(samples) == 60 and set(samples["task"]) == {task}
    counts = sample_counts(synthetic_store, run_id)
    assert counts["samples"].tolist() == [60, 60, 60]
    assert counts["groups"].tolist() == [3, 3, 3]


# -- per-sample metric values ----------------------------------------------------------------------


def test_per_sample_values_reaggregate_to_the_stored_score(synthetic_store: Path) -> None:
    data = load_store(list_store(synthetic_store))
    row = data.scores[data.scores["metric"] == "word_perplexity"].iloc[0]
    samples = load_samples(synthetic_store, row["run_id"], row["task"])
    assert metric_names(samples["statistics"]) == ["word_perplexity"]
    whole = subset_score(samples["statistics"], "word_perplexity", resamples=50)
    assert whole.value == pytest.approx(row["value"], rel=1e-12)
    assert whole.method == "bootstrap"
    per_doc = per_sample_values(samples["statistics"], "word_perplexity")
    stats = [json.loads(text) for text in samples["statistics"]]
    first = stats[0]
    assert per_doc.iloc[0] == pytest.approx(
        math.exp(-first["word_perplexity/logprob"] / first["word_perplexity/words"])
    )


def test_bare_and_unknown_metric_values() -> None:
    statistics = pd.Series(['{"acc": 1.0}', '{"acc": 0.0}', '{"my_plugin": 0.25}', "not json"])
    assert per_sample_values(statistics, "acc").tolist()[:2] == [1.0, 0.0]
    assert math.isnan(per_sample_values(statistics, "acc").iloc[2])
    unknown = subset_score(pd.Series(['{"my_plugin": 0.25}', '{"my_plugin": 0.75}']), "my_plugin")
    assert unknown.value == pytest.approx(0.5) and unknown.method == "normal"
    half = 1.959964 * 0.3535534 / math.sqrt(2)
    assert unknown.ci_low == pytest.approx(0.5 - half, rel=1e-5)


# -- leaderboard -----------------------------------------------------------------------------------


def test_rank_groups_follow_interval_overlap() -> None:
    values = pd.Series([0.9, 0.85, 0.5, math.nan])
    low = pd.Series([0.86, 0.80, 0.45, math.nan])
    high = pd.Series([0.94, 0.90, 0.55, math.nan])
    assert rank_groups(values, low, high, True).tolist() == [1, 1, 3, pd.NA]
    # Lower is better: the smallest value is first, overlaps still tie.
    assert rank_groups(values, low, high, False).tolist() == [2, 2, 1, pd.NA]


def _hand_store(tmp_path: Path) -> pd.DataFrame:
    store = ResultStore(tmp_path / "store")
    rows = {
        "r1": ("alpha", 1, {"a": (0.90, 0.01), "b": (0.70, 0.01)}),
        "r2": ("alpha", 2, {"a": (0.80, 0.01), "b": (0.60, 0.01)}),
        "r3": ("beta", 3, {"a": (0.50, 0.10), "b": (0.95, 0.10)}),
    }
    for run_id, (model, hour, tasks) in rows.items():
        scores = [_score(run_id, task, value, se) for task, (value, se) in tasks.items()]
        store.write_run(_run(run_id, model, hour, step=hour * 100), scores, [])
    return load_store(list_store(store.root)).scores


def test_leaderboard_average_interval_and_ranks(tmp_path: Path) -> None:
    board = build_leaderboard(_hand_store(tmp_path), metric="acc")
    table = board.table.set_index("run_id")
    assert board.has_average and board.rank_by == AVERAGE
    assert table.loc["r1", AVERAGE] == pytest.approx(0.80)
    # Tasks are independent: se(mean) = sqrt(0.01² + 0.01²) / 2.
    half = 1.959964 * math.sqrt(2 * 0.01**2) / 2
    assert table.loc["r1", f"{AVERAGE} ci_high"] - 0.80 == pytest.approx(half, rel=1e-5)
    assert board.table["run_id"].tolist() == ["r1", "r3", "r2"]  # by average: .80, .725, .70
    # r3's wide interval overlaps both others; r1 and r2 are separated.
    assert table["rank"].to_dict() == {"r1": 1, "r3": 1, "r2": 2}
    assert table.loc["r3", MEAN_RANK] == pytest.approx(2.0)  # 3rd on a, 1st on b
    by_task = build_leaderboard(_hand_store(tmp_path / "again"), metric="acc", rank_by="b")
    assert by_task.table["run_id"].tolist() == ["r3", "r1", "r2"]


def test_leaderboard_models_filters_and_display(tmp_path: Path) -> None:
    scores = _hand_store(tmp_path)
    models = build_leaderboard(scores, metric="acc", rows="models")
    assert models.table.set_index("model").loc["alpha", "a"] == pytest.approx(0.80)  # newest run
    assert models.table.set_index("model").loc["alpha", "runs"] == 2
    searched = build_leaderboard(scores, metric="acc", filters=LeaderboardFilters(search="BETA"))
    assert searched.table["run_id"].tolist() == ["r3"]
    dated = build_leaderboard(
        scores,
        metric="acc",
        filters=LeaderboardFilters(start=date(2026, 3, 1), end=date(2026, 3, 1), tasks=("b",)),
    )
    assert dated.tasks == ("b",) and len(dated.table) == 3
    assert build_leaderboard(
        scores, metric="acc", filters=LeaderboardFilters(end=date(2026, 2, 1))
    ).table.empty
    shown = display_table(models)
    assert list(shown.columns[:4]) == [RANK, "model", "experiment", "runs"]
    assert shown["a 95% CI"].iloc[0].startswith("[")
    assert "a 95% CI" not in display_table(models, show_intervals=False).columns


def test_primary_metrics_mix_without_average(synthetic_store: Path) -> None:
    scores = load_store(list_store(synthetic_store)).scores
    names = task_names(3)
    assert primary_metrics(scores) == {names[0]: "acc", names[1]: "exact_match", names[2]: "word_perplexity"}
    board = build_leaderboard(scores)
    assert not board.has_average and board.rank_by == MEAN_RANK
    assert board.higher_is_better[names[2]] is False
    assert board.table[MEAN_RANK].is_monotonic_increasing
    # Later checkpoints are better in the synthetic store: the last run beats the first on perplexity.
    table = board.table.set_index("run_id")
    assert table.loc["synth-0006-e0-s2000", names[2]] < table.loc["synth-0000-e0-s500", names[2]]


# -- trends, diffs, samples, groups ----------------------------------------------------------------


def test_trend_frame_keeps_the_newest_run_per_step(tmp_path: Path) -> None:
    scores = _hand_store(tmp_path)
    store = ResultStore(tmp_path / "store")
    store.write_run(_run("r4", "alpha", 9, step=100), [_score("r4", "a", 0.42, 0.01)], [])
    scores = load_store(list_store(store.root)).scores
    frame = trend_frame(scores, "a", "acc")
    assert frame["step"].tolist() == [100, 200, 300]
    assert frame["value"].tolist() == [0.42, 0.80, 0.50]
    assert trend_frame(scores, "a", "acc", ("nope",)).empty


def test_unpaired_differences_and_verdicts(tmp_path: Path) -> None:
    scores = _hand_store(tmp_path)
    table = unpaired_differences(scores, "r1", "r2").set_index("task")
    assert table.loc["a", "difference"] == pytest.approx(-0.10)
    half = 1.959964 * math.sqrt(2) * 0.01
    assert table.loc["a", "ci_high"] == pytest.approx(-0.10 + half, rel=1e-5)
    assert table.loc["a", "p_value"] < 1e-6
    assert verdicts(table.reset_index()).tolist() == ["candidate worse", "candidate worse"]
    # The metric registry's direction wins over a stored flag; a metric it does not know keeps the flag.
    flipped = table.reset_index().assign(higher_is_better=False)
    assert verdicts(flipped).tolist() == ["candidate worse", "candidate worse"]
    unknown = flipped.assign(metric="house_loss")
    assert verdicts(unknown).tolist() == ["candidate better", "candidate better"]


def test_task_differences_paired_or_fallback(synthetic_store: Path, tmp_path: Path) -> None:
    data = load_store(list_store(synthetic_store))
    first, last = data.runs["run_id"].iloc[0], data.runs["run_id"].iloc[-1]
    result = task_differences(str(synthetic_store), data.scores, first, last)
    assert result.method == PAIRED, result.note
    assert len(result.table) == 4
    assert (result.table["ci_low"] <= result.table["difference"]).all()
    # Runs that harness.compare refuses (here: another task version) are compared unpaired, and say why.
    refused = tmp_path / "store"
    shutil.copytree(synthetic_store, refused)
    part = refused / "scores" / f"part-{last}.parquet"
    table = pq.read_table(part)
    versions = pa.array(["2.0"] * table.num_rows, type=pa.string())
    pq.write_table(
        table.set_column(table.schema.get_field_index("task_version"), "task_version", versions), part
    )
    changed = load_store(list_store(refused))
    fallback = task_differences(str(refused), changed.scores, first, last)
    assert fallback.method == UNPAIRED and fallback.note and "refused" in fallback.note
    merged = fallback.table.merge(result.table, on=["task", "metric"], suffixes=("", "_paired"))
    np.testing.assert_allclose(merged["difference"], merged["difference_paired"], atol=1e-12)


def test_derived_scores_are_compared_unpaired_next_to_paired_ones(synthetic_store: Path) -> None:
    data = load_store(list_store(synthetic_store))
    first, last = data.runs["run_id"].iloc[0], data.runs["run_id"].iloc[-1]
    base = data.scores[data.scores["run_id"] == first].iloc[[0]]
    derived = pd.concat(
        [
            base.assign(metric="group/acc/group_a", value=0.5, stderr=0.05),
            base.assign(run_id=last, metric="group/acc/group_a", value=0.7, stderr=0.05),
        ]
    )
    result = task_differences(str(synthetic_store), pd.concat([data.scores, derived]), first, last)
    tests = result.table.set_index("metric")["test"]
    assert tests["group/acc/group_a"] == "unpaired_normal"
    assert tests["acc"] == "mcnemar" and tests["word_perplexity"] == "paired_bootstrap"
    assert result.method == PAIRED and result.note and "1 derived" in result.note
    row = result.table.set_index("metric").loc["group/acc/group_a"]
    assert row["difference"] == pytest.approx(0.2)


def _samples(run_id: str, correct: list[float], predictions: list[str]) -> list[SampleRecord]:
    return [
        SampleRecord(
            run_id=run_id,
            task="qa",
            doc_id=doc,
            prompt=f"Question {doc}?",
            target=f"answer {doc}",
            prediction=prediction,
            choice_logprobs=None,
            statistics={"exact_match/match": hit, "exact_match/count": 1.0},
            group="g1" if doc < 2 else "g2",
        )
        for doc, (hit, prediction) in enumerate(zip(correct, predictions, strict=True))
    ]


def test_disagreements_and_sample_filters(tmp_path: Path) -> None:
    base = pd.DataFrame([r.__dict__ for r in _samples("b", [1, 0, 1, 0], ["answer 0", "x", "answer 2", "y"])])
    cand = pd.DataFrame([r.__dict__ for r in _samples("c", [1, 1, 0, 0], ["answer 0", "answer 1", "z", "w"])])
    for frame in (base, cand):
        frame["statistics"] = frame["statistics"].map(json.dumps)
    table = disagreements(base, cand, "exact_match")
    assert table["doc_id"].tolist() == [1, 2, 3]  # doc 0 agrees; doc 3 differs in output only
    assert table["difference"].tolist()[:2] == [1.0, -1.0]
    assert len(disagreements(base, cand, "exact_match", only_differing=False)) == 4

    shown = sample_table(base, "exact_match")
    assert is_binary(shown["value"])
    assert filter_samples(shown, SampleFilters(correctness="correct"))["doc_id"].tolist() == [0, 2]
    assert filter_samples(shown, SampleFilters(correctness="incorrect", groups=("g2",)))[
        "doc_id"
    ].tolist() == [3]
    assert filter_samples(shown, SampleFilters(search="QUESTION 1"))["doc_id"].tolist() == [1]
    assert filter_samples(shown, SampleFilters(value_range=(0.5, 1.0)))["doc_id"].tolist() == [0, 2]
    with pytest.raises(ValueError, match="correctness"):
        filter_samples(shown, SampleFilters(correctness="maybe"))


def test_group_report_values_gap_and_ratio() -> None:
    records = _samples("r", [1, 1, 1, 0], ["a", "b", "c", "d"])
    frame = pd.DataFrame([r.__dict__ for r in records])
    frame["statistics"] = frame["statistics"].map(json.dumps)
    frame.loc[len(frame)] = {**frame.iloc[0].to_dict(), "doc_id": 9, "group": None}
    report = group_report(frame, "exact_match")
    assert report.table["group"].tolist() == ["g1", "g2"]
    assert report.table["value"].tolist() == [1.0, 0.5]
    assert report.gap == pytest.approx(0.5) and report.ratio == pytest.approx(0.5)
    assert (report.best_group, report.worst_group, report.ungrouped) == ("g1", "g2", 1)
    # A proportion's interval stays inside [0, 1]: Wilson's, here for 1 of 2.
    z2 = 1.959964**2
    half = math.sqrt(z2) * math.sqrt(0.25 / 2 + z2 / 16) / (1 + z2 / 2)
    assert report.table["ci_high"].iloc[1] == pytest.approx(0.5 + half, rel=1e-5)
    assert report.table["ci_low"].ge(0).all() and report.table["ci_high"].le(1).all()
    single = group_report(frame[frame["group"] == "g1"], "exact_match")
    assert len(single.table) == 1 and math.isnan(single.gap) and math.isnan(single.ratio)
    assert single.best_group is None


def test_stored_fairness_rows_are_picked_out(tmp_path: Path) -> None:
    scores = _hand_store(tmp_path)
    extra = scores[(scores["run_id"] == "r1") & (scores["task"] == "a")].copy()
    group_row = extra.assign(metric="group/acc/x", value=0.8)
    extra = pd.concat([group_row, extra.assign(metric="fairness/acc/difference", value=0.1)])
    stored = stored_fairness_scores(pd.concat([scores, extra]), "r1", "a")
    assert stored["metric"].tolist() == ["fairness/acc/difference", "group/acc/x"]
    assert stored_fairness_scores(scores, "r1", "a").empty


# -- command line ----------------------------------------------------------------------------------


def test_leaderboard_command_is_registered_and_builds_streamlit_call(tmp_path: Path) -> None:
    args = build_parser().parse_args(["leaderboard", "--store", str(tmp_path), "--port", "8600"])
    assert args.port == 8600 and args.store == str(tmp_path)
    command = streamlit_command(tmp_path, 8600, headless=True)
    assert command[1:4] == ["-m", "streamlit", "run"]
    assert Path(command[4]).name == "app.py" and Path(command[4]).is_file()
    assert command[command.index("--server.port") + 1] == "8600"
    assert command[-3:] == ["--", "--store", str(tmp_path)]


def test_app_store_path_comes_from_argv_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.leaderboard.ui import configured_store

    monkeypatch.setenv("HARNESS_STORE", "/from/env")
    assert configured_store(["--store", "/from/argv"]) == "/from/argv"
    assert configured_store(["--sto", "/abbreviated", "-q"]) == "/from/env"
    monkeypatch.delenv("HARNESS_STORE")
    assert configured_store([]) == "harness_store"


def test_leaderboard_command_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(["leaderboard", "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["leaderboard", "--store", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err
