"""Precision, recall and F1 (every average, per class) against scikit-learn, and lm-eval's `f1`."""

from __future__ import annotations

import math
import random
import warnings
from typing import Any

import numpy as np
import pytest
from lm_eval.api import metrics as lm_metrics
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import precision_recall_fscore_support

from harness.errors import HarnessError
from harness.metrics import SampleOutcome, get_metric, metric_from_signature, score, statistics_matrix
from harness.metrics.classification import Classification, class_metrics, per_class_table
from harness.metrics.corpus import score_texts

TOLERANCE = 1e-9
LABELS = ["pos", "neg", "neutral", "mixed"]


def _sklearn(
    gold: list[Any],
    predicted: list[Any],
    average: str | None,
    labels: list[str] | None,
    zero_division: Any,
    pos_label: Any = 1,
) -> tuple[Any, Any, Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return precision_recall_fscore_support(
            gold, predicted, average=average, labels=labels, zero_division=zero_division, pos_label=pos_label
        )


def _data(seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    n = rng.randint(1, 80)
    gold = [rng.choice(LABELS[: rng.randint(1, 4)]) for _ in range(n)]
    # Mostly right, sometimes another label, sometimes text outside the label set.
    predicted = [g if rng.random() < 0.6 else rng.choice([*LABELS, "I think pos", ""]) for g in gold]
    return gold, predicted


def _outcomes(gold: list[str], predicted: list[str]) -> list[SampleOutcome]:
    return [
        SampleOutcome("generate_until", target=g, prediction=p) for g, p in zip(gold, predicted, strict=True)
    ]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize("zero_division", [0, 1, "nan"])
def test_averages_match_sklearn_on_a_declared_label_set(seed: int, average: str, zero_division: Any) -> None:
    gold, predicted = _data(seed)
    labels = LABELS[: 2 + seed % 3]  # some gold/predicted labels fall outside the declared set
    sk_zero = math.nan if zero_division == "nan" else zero_division
    expected = _sklearn(gold, predicted, average, labels, sk_zero)
    for index, measure in enumerate(("precision", "recall", "f1")):
        metric = get_metric(f"{measure}_{average}", labels=labels, zero_division=zero_division)
        value = float(metric.aggregate(statistics_matrix(metric, _outcomes(gold, predicted)).sum(axis=0)))
        np.testing.assert_allclose(value, expected[index], rtol=0, atol=TOLERANCE)
        # f1_macro is f1 with average: macro, and its signature says so
        same = get_metric(measure, average=average, labels=labels, zero_division=zero_division)
        assert same.signature().partition("|")[2] == metric.signature().partition("|")[2]
        stats = statistics_matrix(same, _outcomes(gold, predicted))
        assert float(same.aggregate(stats.sum(axis=0))) == pytest.approx(value, nan_ok=True)


@pytest.mark.parametrize("seed", range(8))
def test_inferred_labels_and_per_class_table_match_sklearn(seed: int) -> None:
    gold, predicted = _data(seed + 50)
    result = score_texts(["precision_macro", "recall_weighted", "f1_micro"], predicted, labels=gold)
    for score_row, average, index in zip(
        result.scores[:3], ["macro", "weighted", "micro"], [0, 1, 2], strict=True
    ):
        # labels=None: scikit-learn's sorted union of gold and predicted labels, ours too
        assert score_row.value == pytest.approx(
            _sklearn(gold, predicted, average, None, 0)[index], abs=TOLERANCE
        )
    assert result.per_class is not None
    precision, recall, f1, support = _sklearn(gold, predicted, None, None, 0)
    table = result.per_class
    assert list(table["label"]) == sorted(set(gold) | set(predicted))
    np.testing.assert_allclose(table["precision"], precision, atol=TOLERANCE)
    np.testing.assert_allclose(table["recall"], recall, atol=TOLERANCE)
    np.testing.assert_allclose(table["f1"], f1, atol=TOLERANCE)
    assert list(table["support"]) == list(support)
    per_class = {s.metric: s.value for s in result.scores[3:]}
    for label, value in zip(table["label"], table["f1"], strict=True):
        assert per_class[f"f1[{label}]"] == pytest.approx(value, abs=TOLERANCE)


@pytest.mark.parametrize("seed", range(6))
def test_binary_matches_sklearn_and_lm_eval_on_multiple_choice(seed: int) -> None:
    # lm-eval's `f1` on a two-choice task: sklearn.f1_score(gold indices, argmax indices).
    rng = random.Random(seed)
    outcomes, items = [], []
    for _ in range(rng.randint(2, 60)):
        logprobs = (-rng.uniform(0, 5), -rng.uniform(0, 5))
        gold = rng.randrange(2)
        outcomes.append(
            SampleOutcome("multiple_choice", gold=gold, choices=("no", "yes"), choice_logprobs=logprobs)
        )
        items.append((gold, int(np.argmax(logprobs))))
    metric = get_metric("f1")
    value = score(metric, statistics_matrix(metric, outcomes), bootstrap_resamples=0).value
    assert value == pytest.approx(lm_metrics.f1_score(items), abs=TOLERANCE)
    # A string label names a choice's text: pos_label "yes" is choice 1.
    by_text = get_metric("recall", pos_label="yes", labels=["no", "yes"])
    golds, predicted = (list(column) for column in zip(*items, strict=True))
    expected = _sklearn(golds, predicted, "binary", None, 0, pos_label=1)[1]
    assert float(by_text.aggregate(statistics_matrix(by_text, outcomes).sum(axis=0))) == pytest.approx(
        expected, abs=TOLERANCE
    )


def test_class_metrics_read_the_parent_statistics() -> None:
    gold, predicted = _data(3)
    metric = get_metric("f1_macro", labels=LABELS)
    stats = statistics_matrix(metric, _outcomes(gold, predicted))
    assert isinstance(metric, Classification)
    table = per_class_table(metric, stats.sum(axis=0))
    for (label, view), f1 in zip(class_metrics(metric), table["f1"], strict=True):
        # Same name and statistics as the parent, so a stored per-class row re-aggregates from them.
        assert view.name == "f1_macro" and view.statistic_names == metric.statistic_names
        assert view.class_label == label and f"|class_label:{label}|" in view.signature()
        assert float(view.aggregate(stats.sum(axis=0))) == pytest.approx(f1)
        rebuilt = metric_from_signature(view.signature())
        assert rebuilt.signature() == view.signature()
        assert float(rebuilt.aggregate(stats.sum(axis=0))) == pytest.approx(f1)


def test_bootstrap_interval_brackets_the_value() -> None:
    gold, predicted = _data(11)
    metric = get_metric("f1_macro", labels=sorted(set(gold) | set(predicted)))
    result = score(
        metric, statistics_matrix(metric, _outcomes(gold, predicted)), bootstrap_resamples=300, seed=1
    )
    assert result.stderr is not None and result.ci_low is not None and result.ci_high is not None
    assert result.ci_low <= result.value <= result.ci_high and result.stderr > 0


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("f1_macro", {}, "needs the label set"),
        ("f1", {"average": "samples"}, "average must be one of"),
        ("f1", {"labels": [True, False]}, "quote"),
        ("f1", {"labels": ["a", "b"], "pos_label": "c"}, "pos_label 'c' is not one of the labels"),
        ("f1", {"labels": "abc"}, "must be a list"),
        ("f1_micro", {"labels": ["a", "a"]}, "distinct"),
        ("recall", {"zero_division": 0.5}, "zero_division"),
        ("f1_weighted", {"average": "macro"}, "does not accept"),
    ],
)
def test_bad_settings_are_user_errors(name: str, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        get_metric(name, **settings)


def test_binary_on_many_labels_says_which_average_to_use() -> None:
    with pytest.raises(HarnessError, match="use f1_macro, f1_micro or f1_weighted"):
        score_texts(["f1"], ["a", "b", "c"], labels=["a", "b", "c"])
    with pytest.raises(HarnessError, match="pos_label '1' is not a label"):
        score_texts(["f1"], ["neg", "pos"], labels=["pos", "neg"])
    result = score_texts(["f1"], ["neg", "pos"], labels=["pos", "pos"], settings={"f1": {"pos_label": "pos"}})
    expected = _sklearn(["pos", "pos"], ["neg", "pos"], "binary", None, 0, pos_label="pos")[2]
    assert result.scores[0].value == pytest.approx(expected, abs=TOLERANCE)
