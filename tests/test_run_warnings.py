"""Warnings that matter: (nearly) all predictions empty, every choice tied, fewer than 10 documents.

Each is one line in the run's output and a record in its provenance; none changes a score.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

import harness
from harness.adapters.base import ProgressCallback
from harness.adapters.mock import MockAdapter
from harness.cli import main
from harness.errors import HarnessWarning
from harness.metrics import SampleOutcome
from harness.metrics.outcome_checks import MIN_DOCUMENTS, outcome_warnings
from harness.requests import GenerationRequest, GenerationResult, LoglikelihoodRequest, LoglikelihoodResult


def _generated(predictions: Sequence[str]) -> list[SampleOutcome]:
    return [SampleOutcome("generate_until", target="Paris", prediction=text) for text in predictions]


def _choices(tied: int, total: int) -> list[SampleOutcome]:
    return [
        SampleOutcome(
            "multiple_choice",
            gold=0,
            choices=("a", "b", "c"),
            choice_logprobs=(-2.0, -2.0, -2.0) if index < tied else (-1.0, -2.0, -3.0),
        )
        for index in range(total)
    ]


def _kinds(outcomes: Sequence[SampleOutcome]) -> list[str]:
    return [found.kind for found in outcome_warnings("t", outcomes)]


@pytest.mark.parametrize(
    ("empty", "total", "warned"),
    [(20, 20, True), (18, 20, True), (17, 20, False), (0, 20, False), (10, 10, True)],
)
def test_empty_predictions_warn_when_all_or_most(empty: int, total: int, warned: bool) -> None:
    # Whitespace is as empty as nothing: "\n" is what a model stopped at its first token gives.
    outcomes = _generated([" \n" if i % 2 else "" for i in range(empty)] + ["Paris"] * (total - empty))
    assert ("empty_predictions" in _kinds(outcomes)) is warned
    if warned:
        (found,) = [w for w in outcome_warnings("facts", outcomes) if w.kind == "empty_predictions"]
        share = f"all {total}" if empty == total else f"{empty} of {total}"
        assert found.message.startswith(f"facts: {share} predictions are empty")


@pytest.mark.parametrize(
    ("tied", "total", "warned"), [(12, 12, True), (9, 10, True), (8, 10, False), (0, 12, False)]
)
def test_tied_choices_warn_when_all_or_most(tied: int, total: int, warned: bool) -> None:
    assert ("tied_choices" in _kinds(_choices(tied, total))) is warned


def test_one_choice_is_no_tie() -> None:
    outcomes = [
        SampleOutcome("multiple_choice", gold=0, choices=("a",), choice_logprobs=(-1.0,)) for _ in range(12)
    ]
    assert _kinds(outcomes) == []


@pytest.mark.parametrize(
    ("documents", "warned"), [(1, True), (MIN_DOCUMENTS - 1, True), (MIN_DOCUMENTS, False)]
)
def test_few_documents_warn(documents: int, warned: bool) -> None:
    found = outcome_warnings("tone", _generated(["Paris"] * documents))
    assert ([w.kind for w in found] == ["few_documents"]) is warned
    if warned:
        assert found[0].message.startswith(f"tone: only {documents} document")


class _SilentModel(MockAdapter):
    """A model that stops before its first token: every generation is the empty string."""

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        self._served(len(requests), progress)
        return [GenerationResult("", 0) for _ in requests]


class _FlatModel(MockAdapter):
    """A model that gives every continuation the same log-likelihood (a broken scoring path)."""

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        self._served(len(requests), progress)
        return [LoglikelihoodResult(-5.0, False, 1) for _ in requests]


def _stored_warnings(store: Path) -> list[dict[str, str]]:
    provenance = json.loads(pd.read_parquet(store / "runs")["provenance"].iloc[0])
    return list(provenance["warnings"])


def test_a_run_of_empty_generations_warns_and_records_it(tmp_path: Path) -> None:
    with pytest.warns(HarnessWarning, match="all 12 predictions are empty"):
        report = harness.evaluate(
            _SilentModel(name="silent"), ["harness_facts_qa"], limit=12, store=tmp_path, bootstrap_resamples=0
        )
    assert [s.value for s in report.scores if s.metric == "exact_match"] == [0.0]  # the score is unchanged
    assert [(w["task"], w["kind"]) for w in _stored_warnings(tmp_path)] == [
        ("harness_facts_qa", "empty_predictions")
    ]


def test_a_run_with_tied_choices_warns_and_records_it(tmp_path: Path) -> None:
    with pytest.warns(HarnessWarning, match="same log-likelihood in all 12 documents"):
        harness.evaluate(
            _FlatModel(name="flat"), ["harness_tone"], limit=12, store=tmp_path, bootstrap_resamples=0
        )
    assert [w["kind"] for w in _stored_warnings(tmp_path)] == ["tied_choices"]


def test_a_healthy_run_records_no_warnings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", HarnessWarning)
        harness.evaluate("mock:0", ["harness_tone"], limit=12, store=tmp_path, bootstrap_resamples=0)
    assert _stored_warnings(tmp_path) == []


def test_the_cli_prints_one_line_per_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = "harness_tone,harness_reading_mc"
    options = ["--store", str(tmp_path), "--quiet", "--bootstrap-resamples", "0"]
    code = main(["run", "--model", "mock:0", "--tasks", tasks, "--limit", "3", *options])
    assert code == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harness: warning:")]
    assert lines == [
        "harness: warning: harness_tone: only 3 documents (fewer than 10); its scores are too unstable to "
        "compare with other runs",
        "harness: warning: harness_reading_mc: only 3 documents (fewer than 10); its scores are too unstable "
        "to compare with other runs",
    ]
    assert [w["kind"] for w in _stored_warnings(tmp_path)] == ["few_documents", "few_documents"]
