"""Permutation p-values: equal to a direct permutation loop with the same seed (numbers from fairlearn on
each shuffled labelling), near uniform when groups do not differ, and Holm's correction by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from sklearn.metrics import accuracy_score

from harness.fairness import (
    Decisions,
    decision_fairness,
    group_design,
    group_metric_frame,
    group_scores,
    holm,
)
from harness.fairness.scores import signature_settings
from harness.metrics import get_metric

# fairlearn computes every shuffle of the direct loop (~15 ms a call), so the loops are kept short.
PERMUTATIONS = 50


def _data(seed: int, gap: float, n: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.choice(np.array(["a", "b", "c"]), size=n, p=[0.5, 0.3, 0.2])
    y_true = rng.random(n) < 0.5
    y_true[:6] = [True, False] * 3  # every group has both classes at least once in practice
    p_select = np.where(groups == "a", 0.5 + gap, 0.5)
    y_pred = rng.random(n) < p_select
    return y_true, y_pred, groups


def _shuffles(codes: np.ndarray, blocks: np.ndarray, permutations: int, seed: int) -> list[np.ndarray]:
    """The documented draw: per shuffle, each block in ascending order permuted by rng.permutation."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(permutations):
        shuffled = codes.copy()
        for block in np.unique(blocks):
            indices = np.flatnonzero(blocks == block)
            shuffled[indices] = codes[indices][rng.permutation(len(indices))]
        found.append(shuffled)
    return found


def _direct_p(observed: float, null: list[float], direction: str) -> float:
    null_values = np.array([value for value in null if math.isfinite(value)])
    if direction == "greater":
        extreme = np.count_nonzero(null_values >= observed - 1e-12)
    else:
        extreme = np.count_nonzero(null_values <= observed + 1e-12)
    return (1 + extreme) / (1 + len(null_values))


@pytest.mark.parametrize("seed", [0, 1])
def test_metric_gap_p_values_equal_a_direct_permutation_with_fairlearn(seed: int) -> None:
    y_true, y_pred, groups = _data(seed, gap=0.15)
    acc = get_metric("acc")
    correct = (y_true == y_pred).astype(float)
    stats = np.column_stack([correct, np.ones(len(correct))])
    design = group_design(list(groups))
    frame = group_metric_frame(
        acc, stats, design, bootstrap_resamples=0, permutations=PERMUTATIONS, seed=seed
    )
    names = np.array(design.groups)
    differences, ratios, against_a = [], [], []
    for shuffled in _shuffles(design.codes, np.zeros(len(groups)), PERMUTATIONS, seed):
        labels = names[shuffled]
        reference = MetricFrame(
            metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=labels
        )
        differences.append(float(reference.difference()))
        ratios.append(float(reference.ratio()))
        inside = labels == "a"
        against_a.append(
            abs(
                accuracy_score(y_true[inside], y_pred[inside])
                - accuracy_score(y_true[~inside], y_pred[~inside])
            )
        )
    observed = MetricFrame(metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    assert frame.difference_p == pytest.approx(
        _direct_p(float(observed.difference()), differences, "greater")
    )
    assert frame.ratio_p == pytest.approx(_direct_p(float(observed.ratio()), ratios, "less"))
    inside = groups == "a"
    gap_a = abs(
        accuracy_score(y_true[inside], y_pred[inside]) - accuracy_score(y_true[~inside], y_pred[~inside])
    )
    assert frame.group_p["a"] == pytest.approx(_direct_p(gap_a, against_a, "greater"))
    assert dict(frame.group_p_holm) == pytest.approx(
        dict(zip(design.groups, holm([frame.group_p[g] for g in design.groups]), strict=True))
    )


@pytest.mark.parametrize("seed", [3])
def test_parity_p_values_equal_a_direct_permutation_with_fairlearn(seed: int) -> None:
    y_true, y_pred, groups = _data(seed, gap=0.2)
    design = group_design(list(groups))
    result = decision_fairness(
        Decisions(y_true, y_pred, "1"), design, bootstrap_resamples=0, permutations=PERMUTATIONS, seed=seed
    )
    names = np.array(design.groups)
    # Demographic parity: labels shuffled among all samples.
    dp, dp_ratio = [], []
    for shuffled in _shuffles(design.codes, np.zeros(len(groups)), PERMUTATIONS, seed):
        dp.append(demographic_parity_difference(y_true, y_pred, sensitive_features=names[shuffled]))
        dp_ratio.append(demographic_parity_ratio(y_true, y_pred, sensitive_features=names[shuffled]))
    observed = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    assert result.p_values["dp_difference"] == pytest.approx(_direct_p(observed, dp, "greater"))
    observed_ratio = demographic_parity_ratio(y_true, y_pred, sensitive_features=groups)
    assert result.p_values["dp_ratio"] == pytest.approx(_direct_p(observed_ratio, dp_ratio, "less"))
    # Error-rate gaps: labels shuffled within each gold class (blocks in ascending order: False, True).
    eo, eop = [], []
    for shuffled in _shuffles(design.codes, y_true.astype(int), PERMUTATIONS, seed):
        eo.append(equalized_odds_difference(y_true, y_pred, sensitive_features=names[shuffled]))
        eop.append(equal_opportunity_difference(y_true, y_pred, sensitive_features=names[shuffled]))
    observed_eo = equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    observed_eop = equal_opportunity_difference(y_true, y_pred, sensitive_features=groups)
    assert result.p_values["eo_difference"] == pytest.approx(_direct_p(observed_eo, eo, "greater"))
    assert result.p_values["eop_difference"] == pytest.approx(_direct_p(observed_eop, eop, "greater"))


def test_p_values_are_near_uniform_when_groups_do_not_differ() -> None:
    trials, below = 240, {"difference": 0, "ratio": 0, "dp": 0, "eo": 0, "group": 0}
    acc = get_metric("acc")
    for trial in range(trials):
        y_true, y_pred, groups = _data(1000 + trial, gap=0.0, n=120)
        design = group_design(list(groups))
        stats = np.column_stack([(y_true == y_pred).astype(float), np.ones(len(groups))])
        frame = group_metric_frame(acc, stats, design, bootstrap_resamples=0, permutations=199, seed=trial)
        parity = decision_fairness(
            Decisions(y_true, y_pred, "1"), design, bootstrap_resamples=0, permutations=199, seed=trial
        )
        below["difference"] += frame.difference_p < 0.05
        below["ratio"] += frame.ratio_p < 0.05
        below["dp"] += parity.p_values["dp_difference"] < 0.05
        below["eo"] += parity.p_values["eo_difference"] < 0.05
        below["group"] += min(frame.group_p_holm.values()) < 0.05
    for name, count in below.items():
        assert count / trials <= 0.06, (name, count)
    assert below["difference"] >= 2  # not a test that can never reject


def test_a_real_gap_is_significant() -> None:
    y_true, y_pred, groups = _data(7, gap=0.35, n=300)
    result = decision_fairness(
        Decisions(y_true, y_pred, "1"), group_design(list(groups)), bootstrap_resamples=0, permutations=500
    )
    assert result.p_values["dp_difference"] < 0.01


def test_holm_matches_the_step_down_by_hand() -> None:
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, max(0.04, 0.06), max(0.06, 0.06), max(0.06, 0.5)
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    found = holm([0.2, math.nan, 0.01])
    assert found[0] == pytest.approx(0.2) and math.isnan(found[1]) and found[2] == pytest.approx(0.02)
    assert holm([0.9, 0.3]) == pytest.approx([0.9, 0.6])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_signatures_state_the_test_and_the_correction() -> None:
    y_true, y_pred, groups = _data(8, gap=0.2)
    acc = get_metric("acc")
    stats = np.column_stack([(y_true == y_pred).astype(float), np.ones(len(groups))])
    rows = {
        row.metric: signature_settings(row.signature)
        for row in group_scores(
            [acc], [stats], list(groups), decisions=Decisions(y_true, y_pred, "1"), permutations=100
        )
    }
    group_row = rows["group/acc/a"]
    assert group_row["test"] == "permutation" and group_row["permutations"] == 100
    assert group_row["correction"] == "holm" and group_row["family"] == "3 groups"
    assert 0 < group_row["p_value"] <= group_row["p_holm"] <= 1
    assert 0 < rows["fairness/acc/difference"]["p_value"] <= 1
    assert 0 < rows["fairness/demographic_parity_difference"]["p_value"] <= 1
    assert 0 < rows["fairness/equalized_odds_difference"]["p_value"] <= 1
    # Without permutations no p-value is claimed.
    quiet = group_scores([acc], [stats], list(groups), permutations=0)
    assert all("p_value" not in signature_settings(row.signature) for row in quiet)
