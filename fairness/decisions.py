"""Group fairness of binary decisions: demographic parity, equalized odds, equal opportunity.

A decision is "selected" when the favourable outcome was chosen (approve, hire, answer) and
"positive" when the favourable outcome was the right one (the gold answer). The definitions are
fairlearn's, with method='between_groups' (largest group value minus smallest, smallest over largest)
and equalized odds aggregated 'worst_case'; the golden tests check them against fairlearn's functions.
They are computed here from per-group counts instead of through `MetricFrame` so that the bootstrap
(stratified by group and gold class) is a few array operations rather than a MetricFrame per replicate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from harness.errors import HarnessError
from harness.fairness.bootstrap import Estimate, Quantity, estimate, min_over_max, safe_divide, spread
from harness.fairness.groups import GroupDesign
from harness.fairness.permutation import Direction, permutation_p_values

# Per-sample statistics: selected, positive, selected and positive, one.
_SELECTED, _POSITIVE, _TRUE_POSITIVE, _COUNT = range(4)
# The rates `_rates` returns, in order.
_SELECTION_RATE, _TRUE_POSITIVE_RATE, _FALSE_POSITIVE_RATE = range(3)


@dataclass(frozen=True)
class Decisions:
    """Per sample: was the favourable outcome chosen (y_pred), and was it the right one (y_true)."""

    y_true: np.ndarray = field(compare=False)
    y_pred: np.ndarray = field(compare=False)
    positive: str  # the favourable outcome, named for signatures

    def __post_init__(self) -> None:
        if self.y_true.shape != self.y_pred.shape or self.y_true.ndim != 1:
            raise ValueError(f"y_true {self.y_true.shape} and y_pred {self.y_pred.shape} must be equal 1-d")

    @classmethod
    def from_labels(
        cls, labels: Sequence[str | None], predictions: Sequence[str | None], positive_label: str
    ) -> Decisions:
        """Gold labels and predicted labels, with the favourable label named."""
        if len(labels) != len(predictions):
            raise HarnessError(f"{len(labels)} labels but {len(predictions)} predictions")
        y_true = np.array([label == positive_label for label in labels], dtype=bool)
        y_pred = np.array([prediction == positive_label for prediction in predictions], dtype=bool)
        return cls(y_true, y_pred, positive_label)


@dataclass(frozen=True)
class GroupRates:
    selection_rate: Estimate  # share of samples given the favourable outcome
    true_positive_rate: Estimate  # among samples where it was right; NaN without such samples
    false_positive_rate: Estimate  # among samples where it was wrong; NaN without such samples


@dataclass(frozen=True)
class DecisionFairness:
    """Rates overall and per group, and the parity metrics; NaN where not computable, never 0."""

    positive: str
    design: GroupDesign
    overall: GroupRates
    by_group: Mapping[str, GroupRates]
    demographic_parity_difference: Estimate
    demographic_parity_ratio: Estimate
    equalized_odds_difference: Estimate
    equal_opportunity_difference: Estimate
    # Permutation-test p-value of each parity metric, keyed as `DISPARITIES` (NaN: not tested).
    # Demographic parity shuffles group labels among all samples; the error-rate gaps shuffle them
    # within each gold class, since their null is "same error rates given the truth".
    p_values: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    permutations: int = 0


DISPARITIES = ("dp_difference", "dp_ratio", "eo_difference", "eop_difference")


def _rates(group_totals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = group_totals
    selection = safe_divide(t[..., _SELECTED], t[..., _COUNT])
    tpr = safe_divide(t[..., _TRUE_POSITIVE], t[..., _POSITIVE])
    fpr = safe_divide(t[..., _SELECTED] - t[..., _TRUE_POSITIVE], t[..., _COUNT] - t[..., _POSITIVE])
    return selection, tpr, fpr


def _by_group(stratum_totals: np.ndarray) -> np.ndarray:
    """Strata are (group, gold class) pairs; sum the two classes of each group: (..., G, 4)."""
    shape = stratum_totals.shape
    return np.asarray(stratum_totals.reshape(*shape[:-2], shape[-2] // 2, 2, shape[-1]).sum(axis=-2))


def _rate_of(which: int, group: int | None) -> Quantity:
    def quantity(totals: np.ndarray) -> np.ndarray:
        grouped = _by_group(totals)
        if group is None:  # overall: every grouped sample
            return _rates(grouped.sum(axis=-2))[which]
        return _rates(grouped[..., group, :])[which]

    return quantity


def _disparity(kind: str) -> Quantity:
    """The parity metric `kind` of (group, gold class) stratum totals."""
    gap = _gap(kind)
    return lambda totals: gap(_by_group(totals))


def _gap(kind: str) -> Quantity:
    """The parity metric `kind` of per-group totals (..., G, 4)."""

    def quantity(totals: np.ndarray) -> np.ndarray:
        selection, tpr, fpr = _rates(totals)
        if kind == "dp_difference":
            return spread(selection)
        if kind == "dp_ratio":
            return min_over_max(selection)
        if kind == "eo_difference":
            # fairlearn's worst case; a NaN rate (a group without one class) makes it not computable.
            both = np.stack([spread(tpr), spread(fpr)])
            return np.asarray(np.where(np.isnan(both).any(axis=0), np.nan, both.max(axis=0)))
        return spread(tpr)

    return quantity


def decision_fairness(
    decisions: Decisions,
    design: GroupDesign,
    *,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    clusters: Sequence[object] | None = None,
    permutations: int = 0,
) -> DecisionFairness:
    """Selection and error rates per group and the parity metrics between groups; with `clusters`
    the bootstrap resamples whole clusters (see `fairness.bootstrap.estimate`), and the permutation
    tests (`permutations` shuffles, seeded by `seed`) shuffle labels only within a cluster."""
    if len(decisions.y_true) != len(design.codes):
        raise ValueError(f"{len(decisions.y_true)} decisions for {len(design.codes)} grouped samples")
    if not design.groups:
        raise HarnessError("no sample has a group value; group metrics are not computable")
    y_true, y_pred = decisions.y_true.astype(bool), decisions.y_pred.astype(bool)
    stats = np.stack([y_pred, y_true, y_pred & y_true, np.ones_like(y_true)], axis=1).astype(np.float64)
    # Resampling within (group, gold class) keeps each group's positives and negatives fixed, so the
    # true and false positive rates of a replicate are defined whenever the point values are.
    codes = np.where(design.codes >= 0, design.codes * 2 + y_true.astype(np.int64), -1)
    groups = len(design.groups)
    grouped = design.codes >= 0
    count = int(np.count_nonzero(grouped))
    positives = [int(np.count_nonzero(y_true & (design.codes == g))) for g in range(groups)]
    sizes = list(design.sizes)
    negatives = [size - pos for size, pos in zip(sizes, positives, strict=True)]
    plan: list[tuple[Quantity, int]] = [
        (_rate_of(_SELECTION_RATE, None), count),
        (_rate_of(_TRUE_POSITIVE_RATE, None), int(np.count_nonzero(y_true & grouped))),
        (_rate_of(_FALSE_POSITIVE_RATE, None), int(np.count_nonzero(~y_true & grouped))),
    ]
    for g in range(groups):
        plan += [
            (_rate_of(_SELECTION_RATE, g), sizes[g]),
            (_rate_of(_TRUE_POSITIVE_RATE, g), positives[g]),
            (_rate_of(_FALSE_POSITIVE_RATE, g), negatives[g]),
        ]
    if design.comparable:
        plan += [(_disparity(kind), count) for kind in DISPARITIES]
    found = estimate(
        plan,
        stats,
        codes,
        2 * groups,
        resamples=bootstrap_resamples,
        seed=seed,
        confidence=confidence,
        clusters=clusters,
    )
    nothing = Estimate(float("nan"), None, None, None, count)
    dp_difference, dp_ratio, eo_difference, eop_difference = (
        found[-4:] if design.comparable else [nothing] * 4
    )
    by_group = {name: GroupRates(*found[3 + 3 * g : 6 + 3 * g]) for g, name in enumerate(design.groups)}
    return DecisionFairness(
        positive=decisions.positive,
        design=design,
        overall=GroupRates(*found[:3]),
        by_group=MappingProxyType(by_group),
        demographic_parity_difference=dp_difference,
        demographic_parity_ratio=dp_ratio,
        equalized_odds_difference=eo_difference,
        equal_opportunity_difference=eop_difference,
        p_values=MappingProxyType(_parity_tests(stats, design, y_true, permutations, seed, clusters)),
        permutations=permutations,
    )


def _parity_tests(
    stats: np.ndarray,
    design: GroupDesign,
    y_true: np.ndarray,
    permutations: int,
    seed: int,
    clusters: Sequence[object] | None,
) -> dict[str, float]:
    if not design.comparable or permutations <= 0:
        return {kind: math.nan for kind in DISPARITIES}
    groups = len(design.groups)
    within = list(clusters) if clusters is not None else [""] * len(y_true)
    by_class = [(cluster, bool(truth)) for cluster, truth in zip(within, y_true, strict=True)]
    found: dict[str, float] = {}
    # Demographic parity: one shuffle of all labels; the error-rate gaps: shuffles within gold class.
    selection_tests: list[tuple[Quantity, Direction]] = [
        (_gap("dp_difference"), "greater"),
        (_gap("dp_ratio"), "less"),
    ]
    found["dp_difference"], found["dp_ratio"] = permutation_p_values(
        selection_tests, stats, design.codes, groups, permutations=permutations, seed=seed, blocks=clusters
    )
    error_tests: list[tuple[Quantity, Direction]] = [
        (_gap("eo_difference"), "greater"),
        (_gap("eop_difference"), "greater"),
    ]
    found["eo_difference"], found["eop_difference"] = permutation_p_values(
        error_tests, stats, design.codes, groups, permutations=permutations, seed=seed, blocks=by_class
    )
    return found


__all__ = ["DISPARITIES", "DecisionFairness", "Decisions", "GroupRates", "decision_fairness"]
