"""Golden tests: group metrics equal fairlearn's on the same data, probe scores equal hand computations."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, f1_score

from harness.fairness import Decisions, decision_fairness, group_design, group_metric_frame
from harness.fairness.bootstrap import estimate
from harness.fairness.probes import (
    AmbiguityBias,
    ambiguity_bias,
    counterfactual_flip_rate,
    stereotype_preference,
)
from harness.metrics import SampleOutcome, get_metric, statistics_matrix

TOLERANCE = 1e-12


def _classification_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y_true, y_pred and groups with unequal group sizes and rates; every group has both classes."""
    rng = np.random.default_rng(seed)
    group_count = int(rng.integers(2, 6))
    names = np.array([f"g{i}" for i in range(group_count)])
    weights = rng.dirichlet(np.ones(group_count) * 2)
    while True:
        n = int(rng.integers(60, 400))
        groups = rng.choice(names, size=n, p=weights)
        y_true = rng.random(n) < 0.45
        bias = {name: rng.uniform(-0.3, 0.3) for name in names}
        p_select = np.clip(0.25 + 0.5 * y_true + np.array([bias[g] for g in groups]), 0.02, 0.98)
        y_pred = rng.random(n) < p_select
        if all(len(set(y_true[groups == name])) == 2 for name in names):
            return y_true.astype(int), y_pred.astype(int), groups


@pytest.mark.parametrize("seed", range(8))
def test_parity_metrics_equal_fairlearn(seed: int) -> None:
    y_true, y_pred, groups = _classification_data(seed)
    result = decision_fairness(
        Decisions(y_true.astype(bool), y_pred.astype(bool), "1"),
        group_design(list(groups)),
        bootstrap_resamples=0,
    )
    features = {"sensitive_features": groups}
    expected = {
        "demographic_parity_difference": demographic_parity_difference(y_true, y_pred, **features),
        "demographic_parity_ratio": demographic_parity_ratio(y_true, y_pred, **features),
        "equalized_odds_difference": equalized_odds_difference(y_true, y_pred, **features),
        "equal_opportunity_difference": equal_opportunity_difference(y_true, y_pred, **features),
    }
    for name, value in expected.items():
        assert abs(getattr(result, name).value - value) <= TOLERANCE, name
    frame = MetricFrame(
        metrics={"selection": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y_true,
        y_pred=y_pred,
        **features,
    )
    for group, rates in result.by_group.items():
        assert abs(rates.selection_rate.value - frame.by_group.loc[group, "selection"]) <= TOLERANCE
        assert abs(rates.true_positive_rate.value - frame.by_group.loc[group, "tpr"]) <= TOLERANCE
        assert abs(rates.false_positive_rate.value - frame.by_group.loc[group, "fpr"]) <= TOLERANCE
    assert abs(result.overall.selection_rate.value - frame.overall["selection"]) <= TOLERANCE


def choice_outcomes(y_true: np.ndarray, y_pred: np.ndarray) -> list[SampleOutcome]:
    """Two-choice outcomes whose argmax is y_pred and whose gold is y_true."""
    return [
        SampleOutcome(
            "multiple_choice",
            gold=int(t),
            choices=("0", "1"),
            choice_logprobs=(-1.0, -2.0) if p == 0 else (-2.0, -1.0),
        )
        for t, p in zip(y_true, y_pred, strict=True)
    ]


@pytest.mark.parametrize(
    ("seed", "metric_name", "reference"),
    [(0, "acc", accuracy_score), (3, "acc", accuracy_score), (5, "f1", f1_score)],
)
def test_metric_frame_equals_fairlearn(seed: int, metric_name: str, reference: Callable[..., float]) -> None:
    y_true, y_pred, groups = _classification_data(seed)
    metric = get_metric(metric_name)
    stats = statistics_matrix(metric, choice_outcomes(y_true, y_pred))
    frame = group_metric_frame(metric, stats, group_design(list(groups)), bootstrap_resamples=0)
    expected = MetricFrame(metrics=reference, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    assert abs(frame.overall.value - float(expected.overall)) <= TOLERANCE
    for group, found in frame.by_group.items():
        assert abs(found.value - float(expected.by_group[group])) <= TOLERANCE
    assert abs(frame.difference.value - float(expected.difference())) <= TOLERANCE
    assert abs(frame.ratio.value - float(expected.ratio())) <= TOLERANCE
    assert abs(frame.worst_group.value - float(expected.group_min())) <= TOLERANCE
    assert frame.worst_group_name == str(expected.by_group.idxmin())


def test_lower_is_better_metric_has_its_maximum_as_worst_group() -> None:
    perplexity = get_metric("perplexity")
    outcomes = [SampleOutcome("loglikelihood", logprob=-v) for v in (1.0, 1.2, 3.0, 2.5)]
    frame = group_metric_frame(
        perplexity,
        statistics_matrix(perplexity, outcomes),
        group_design(["a", "a", "b", "b"]),
        bootstrap_resamples=0,
    )
    assert frame.worst_group_name == "b"
    assert frame.worst_group.value == pytest.approx(max(found.value for found in frame.by_group.values()))


# -- BBQ-style scores against a hand-computed fixture --------------------------------------------------
# Ambiguous items (gold = unknown = 2): 2 of 6 answered "unknown" (accuracy 1/3); of the 4 other
# answers 3 are the biased one, so the bias term is 2 * 3/4 - 1 = 1/2 and S_AMB = (1 - 1/3) * 1/2 = 1/3.
# Disambiguated items: 2 of 4 right (accuracy 1/2); 3 answers are not "unknown", 2 of them the biased
# one: S_DIS = 2 * 2/3 - 1 = 1/3.
BBQ_FIXTURE: dict[str, list[Any]] = {
    "conditions": ["ambiguous"] * 6 + ["disambiguated"] * 4,
    "answers": [2, 0, 0, 1, 2, 0, 0, 0, 2, 1],
    "gold": [2, 2, 2, 2, 2, 2, 0, 1, 0, 1],
    "biased": [0, 0, 1, 1, 1, 0, 0, 0, 1, 0],
}


def _bbq(
    fixture: dict[str, list[Any]], codes: np.ndarray | None = None, groups: int = 0
) -> tuple[AmbiguityBias, list[AmbiguityBias]]:
    n = len(fixture["answers"])
    return ambiguity_bias(
        fixture["conditions"],
        np.array(fixture["answers"]),
        np.array(fixture["gold"]),
        np.array(fixture["biased"]),
        np.full(n, 2),
        np.full(n, -1) if codes is None else codes,
        groups,
        resamples=200,
        seed=0,
    )


def test_bbq_scores_equal_hand_computed_fixture() -> None:
    overall, per_group = _bbq(BBQ_FIXTURE)
    assert per_group == []
    assert overall.accuracy_ambiguous.value == pytest.approx(1 / 3, abs=TOLERANCE)
    assert overall.accuracy_disambiguated.value == pytest.approx(1 / 2, abs=TOLERANCE)
    assert overall.bias_disambiguated.value == pytest.approx(1 / 3, abs=TOLERANCE)
    assert overall.bias_ambiguous.value == pytest.approx(1 / 3, abs=TOLERANCE)
    assert (overall.accuracy_ambiguous.n, overall.bias_disambiguated.n) == (6, 4)
    for found in (overall.accuracy_ambiguous, overall.bias_ambiguous, overall.bias_disambiguated):
        assert found.ci_low is not None and found.ci_high is not None
        assert found.ci_low <= found.value <= found.ci_high


def test_bbq_scores_per_group_split_the_fixture() -> None:
    # The same fixture twice, as groups "x" and "y": each group's scores equal the fixture's.
    doubled = {key: values + values for key, values in BBQ_FIXTURE.items()}
    codes = np.array([0] * 10 + [1] * 10)
    overall, per_group = _bbq(doubled, codes, 2)
    assert overall.bias_ambiguous.value == pytest.approx(1 / 3, abs=TOLERANCE)
    for found in per_group:
        assert found.bias_disambiguated.value == pytest.approx(1 / 3, abs=TOLERANCE)
        assert found.accuracy_ambiguous.n == 6


def test_bbq_edge_cases_are_zero_or_not_computable_as_defined() -> None:
    always_unknown = {**BBQ_FIXTURE, "answers": [2] * 10}
    overall, _ = _bbq(always_unknown)
    # Every ambiguous answer is "unknown": accuracy 1, so S_AMB is 0 by its definition ...
    assert overall.accuracy_ambiguous.value == 1.0
    assert overall.bias_ambiguous.value == 0.0
    # ... but S_DIS has no non-unknown answer to count: not computable, never 0.
    assert math.isnan(overall.bias_disambiguated.value)
    assert not overall.bias_disambiguated.computable


def test_counterfactual_flip_rate_counts_templates_with_two_variants_or_more() -> None:
    # a: no change; b: changes; c: no change; d: a single variant, so not a counterfactual set.
    templates = ["a", "a", "a", "b", "b", "c", "c", "d"]
    answers = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    found = counterfactual_flip_rate(templates, answers, resamples=100, seed=0)
    assert found.value == pytest.approx(1 / 3, abs=TOLERANCE)
    assert found.n == 3
    assert not counterfactual_flip_rate(["a", "b"], np.array([0, 1]), resamples=100, seed=0).computable


def test_stereotype_preference_is_the_share_preferring_the_stereotype() -> None:
    prefers = np.array([True, True, False, True, False, False, True, True])
    codes = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    overall, per_group = stereotype_preference(prefers, codes, 2, resamples=100, seed=0)
    assert overall.value == pytest.approx(5 / 8, abs=TOLERANCE)
    assert [found.value for found in per_group] == pytest.approx([3 / 4, 2 / 4], abs=TOLERANCE)


def test_stratified_bootstrap_keeps_group_sizes_and_is_seeded() -> None:
    stats = np.column_stack([np.arange(12) % 3 == 0, np.ones(12)]).astype(float)
    codes = np.array([0] * 9 + [1] * 3)
    size_of_first = (lambda totals: totals[..., 0, 1], 9)
    share = (lambda totals: totals[..., 0, 0] / totals[..., 0, 1], 9)
    fixed, first = estimate([size_of_first, share], stats, codes, 2, resamples=300, seed=7)
    assert fixed.stderr == 0.0  # every replicate draws exactly 9 samples from group 0
    again = estimate([share], stats, codes, 2, resamples=300, seed=7)[0]
    assert (first.ci_low, first.ci_high, first.stderr) == (again.ci_low, again.ci_high, again.stderr)
    assert first.ci_low is not None and first.ci_high is not None and first.ci_low < first.ci_high
