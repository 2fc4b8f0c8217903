"""`harness compare`: paired differences on shared samples, McNemar and paired bootstrap, refusals."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli import main
from harness.compare import compare_runs, compare_statistics, mcnemar_p_value
from harness.errors import HarnessError
from harness.metrics import get_metric
from harness.store import ResultStore, RunRecord, SampleRecord, ScoreRecord

T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def write_run(
    store: ResultStore,
    run_id: str,
    stats: Mapping[str, Mapping[str, np.ndarray]],
    *,
    doc_ids: Mapping[str, np.ndarray] | None = None,
    task_version: str = "1",
    signature: str | None = None,
    targets: Mapping[str, list[str]] | None = None,
    value_offset: float = 0.0,
) -> None:
    """One synthetic run: per task, per metric an (n, k) statistics matrix, scores consistent with them."""
    scores, samples = [], []
    for task, by_metric in stats.items():
        n = len(next(iter(by_metric.values())))
        ids = doc_ids[task] if doc_ids else np.arange(n)
        per_doc: list[dict[str, float]] = [{} for _ in range(n)]
        for name, matrix in by_metric.items():
            metric = get_metric(name)
            names = metric.statistic_names
            for row, values in zip(per_doc, matrix, strict=True):
                for stat, value in zip(names, values, strict=True):
                    row[name if len(names) == 1 else f"{name}/{stat}"] = float(value)
            value = float(metric.aggregate(matrix.sum(axis=0))) + value_offset
            sig = signature or metric.signature()
            scores.append(
                ScoreRecord(
                    run_id, task, task_version, name, value, None, None, None, n, metric.higher_is_better, sig
                )
            )
        for index, (doc_id, row) in enumerate(zip(ids, per_doc, strict=True)):
            target = targets[task][index] if targets else f"target {doc_id}"
            samples.append(
                SampleRecord(run_id, task, int(doc_id), f"prompt {doc_id}", target, None, None, row)
            )
    run = RunRecord(
        run_id, T0 + timedelta(minutes=len(store.runs())), "mock", f"fp-{run_id}", None, None, tuple(stats)
    )
    store.write_run(run, scores, samples)


def binary(values: np.ndarray) -> np.ndarray:
    return np.column_stack([values.astype(float), np.ones(len(values))])


def test_mcnemar_exact_and_large_sample_values() -> None:
    assert mcnemar_p_value(0, 0) == 1.0
    assert mcnemar_p_value(5, 5) == 1.0
    assert mcnemar_p_value(10, 0) == pytest.approx(2 / 1024)
    # n = 15 discordant, 3 one way: 2 * (1 + 15 + 105 + 455) / 2**15.
    assert mcnemar_p_value(3, 12) == pytest.approx(2 * 576 / 32768)
    assert mcnemar_p_value(12, 3) == mcnemar_p_value(3, 12)
    # Past the exact limit: chi-square with continuity correction, 1 degree of freedom.
    chi_square = (abs(6000 - 5000) - 1) ** 2 / 11000
    assert mcnemar_p_value(6000, 5000) == pytest.approx(math.erfc(math.sqrt(chi_square / 2)))


def test_identical_runs_show_no_difference() -> None:
    rng = np.random.default_rng(1)
    stats = binary(rng.random(200) < 0.6)
    result = compare_statistics(get_metric("acc"), stats, stats.copy(), task="t")
    assert result.test == "mcnemar"
    assert (result.difference, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert result.n_shared == 200


def test_pairing_detects_a_shift_that_separate_intervals_cannot() -> None:
    # Per-document losses vary a lot between documents but the candidate is uniformly a little worse:
    # the runs' own intervals overlap, yet the paired bootstrap is certain about the sign.
    rng = np.random.default_rng(7)
    logprob = -rng.uniform(50, 150, size=300)
    words = rng.integers(40, 60, size=300).astype(float)
    base = np.column_stack([logprob, words])
    cand = np.column_stack([logprob - 0.02 * words, words])
    metric = get_metric("word_perplexity")
    result = compare_statistics(metric, base, cand, task="prose", resamples=1000)
    assert result.test == "paired_bootstrap"
    assert result.difference > 0 and result.drop > 0  # perplexity rose: a drop in quality
    assert 0 < result.ci_low <= result.difference <= result.ci_high
    assert result.p_value < 0.01
    from harness.metrics import score

    base_score = score(metric, base, bootstrap_resamples=1000)
    cand_score = score(metric, cand, bootstrap_resamples=1000)
    assert base_score.ci_high is not None and cand_score.ci_low is not None
    assert cand_score.ci_low < base_score.ci_high  # unpaired intervals overlap


def test_lower_is_better_improvement_is_a_negative_drop() -> None:
    rng = np.random.default_rng(3)
    logprob = -rng.uniform(50, 150, size=100)
    words = np.full(100, 50.0)
    result = compare_statistics(
        get_metric("word_perplexity"),
        np.column_stack([logprob, words]),
        np.column_stack([logprob * 0.9, words]),
        resamples=500,
    )
    assert result.difference < 0 and result.drop < 0 and result.relative_drop < 0


def test_compare_runs_uses_shared_samples_only(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    rng = np.random.default_rng(11)
    base_correct = rng.random(500) < 0.7
    cand_correct = rng.random(500) < 0.7
    write_run(store, "base", {"qa": {"acc": binary(base_correct)}}, doc_ids={"qa": np.arange(0, 500)})
    write_run(store, "cand", {"qa": {"acc": binary(cand_correct)}}, doc_ids={"qa": np.arange(100, 600)})
    comparison = compare_runs(store, "base", "cand", resamples=200)
    result = comparison.get("qa", "acc")
    assert (result.n_baseline, result.n_candidate, result.n_shared) == (500, 500, 400)
    assert result.baseline == pytest.approx(base_correct[100:].mean())
    assert result.candidate == pytest.approx(cand_correct[:400].mean())
    assert result.baseline_reported == pytest.approx(base_correct.mean())
    discordant_base = int(np.sum(base_correct[100:] & ~cand_correct[:400]))
    assert result.baseline_only == discordant_base
    assert comparison.to_frame().loc[0, "n_shared"] == 400


def test_runs_sharing_no_samples_is_a_clear_error(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    write_run(store, "a", {"qa": {"acc": binary(np.ones(10, bool))}}, doc_ids={"qa": np.arange(10)})
    write_run(store, "b", {"qa": {"acc": binary(np.ones(10, bool))}}, doc_ids={"qa": np.arange(10, 20)})
    with pytest.raises(HarnessError, match="share no samples of task 'qa'"):
        compare_runs(store, "a", "b")


@pytest.mark.parametrize(
    ("candidate_kwargs", "message"),
    [
        ({"task_version": "2"}, "version 1 in the baseline but 2"),
        ({"signature": "acc|harness:9.9"}, "metric signature"),
        ({"targets": {"qa": ["other"] * 20}}, "different targets"),
        ({"value_offset": 0.01}, "stored samples give"),
    ],
)
def test_incomparable_runs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], candidate_kwargs: dict[str, Any], message: str
) -> None:
    store = ResultStore(tmp_path / "store")
    stats = {"qa": {"acc": binary(np.arange(20) % 2 == 0)}}
    write_run(store, "a", stats)
    write_run(store, "b", stats, **candidate_kwargs)
    with pytest.raises(HarnessError, match=message):
        compare_runs(store, "a", "b")
    # The gate refuses the same way: exit code 2 and the reason on one line.
    assert main(["gate", "--baseline", "a", "--candidate", "b", "--store", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err)


def test_harness_version_can_be_left_out_of_signatures(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    stats = {"qa": {"acc": binary(np.arange(20) % 2 == 0)}}
    write_run(store, "a", stats, signature="acc|harness:0.1.0")
    write_run(store, "b", stats, signature="acc|harness:0.2.0")
    with pytest.raises(HarnessError, match="signature"):
        compare_runs(store, "a", "b")
    assert compare_runs(store, "a", "b", ignore_harness_version=True).get("qa", "acc").p_value == 1.0


def test_samples_without_statistics_are_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    write_run(store, "a", {"qa": {"acc": binary(np.ones(5, bool))}})
    run = RunRecord("b", T0 + timedelta(hours=1), "mock", "fp", None, None, ("qa",))
    score = ScoreRecord("b", "qa", "1", "acc", 1.0, None, None, None, 5, True, get_metric("acc").signature())
    samples = [SampleRecord("b", "qa", i, "p", f"target {i}", None, None, {}) for i in range(5)]
    store.write_run(run, [score], samples)
    with pytest.raises(HarnessError, match="lack the per-document statistics of 'acc'"):
        compare_runs(store, "a", "b")


def test_cli_compare_table_json_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ResultStore(tmp_path / "store")
    rng = np.random.default_rng(5)
    logprob, words = -rng.uniform(50, 100, size=50), np.full(50, 40.0)
    write_run(
        store,
        "base-1",
        {
            "qa": {"acc": binary(rng.random(50) < 0.5)},
            "prose": {"word_perplexity": np.column_stack([logprob, words])},
        },
    )
    write_run(
        store,
        "cand-1",
        {
            "qa": {"acc": binary(rng.random(50) < 0.5)},
            "prose": {"word_perplexity": np.column_stack([logprob - 1, words])},
        },
    )
    root = str(store.root)
    assert main(["compare", "base-1", "cand-1", "--store", root, "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "mcnemar" in out and "paired_bootstrap" in out and "50/50/50" in out
    assert main(["compare", "base", "cand", "--store", root, "--format", "json", "--tasks", "prose"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["task"], row["metric"]) for row in rows] == [("prose", "word_perplexity")]
    # Each candidate document has one nat less log-probability over its 40 words: perplexity rises by this.
    baseline, candidate = (math.exp(-(logprob - shift).sum() / words.sum()) for shift in (0, 1))
    assert rows[0]["drop"] == pytest.approx(candidate - baseline, rel=1e-9) and candidate > baseline
    assert main(["compare", "base-1", "nope", "--store", root]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown run 'nope'" in err
