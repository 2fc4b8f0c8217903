"""Any metric disaggregated by group, in the shape of fairlearn's `MetricFrame`.

A harness metric is a function of per-sample statistics summed over documents (`metrics.base`), so a
group's value is the metric's `aggregate` of that group's totals, and the whole table (every group,
the gap between groups, their ratio, the worst group) and its bootstrap replicates are a few
vectorised array operations over per-group totals, with no per-group Python loop per resample.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from harness.errors import HarnessError
from harness.fairness.bootstrap import Estimate, Quantity, estimate, min_over_max, spread
from harness.fairness.permutation import Direction, holm, permutation_p_values
from harness.metrics import Metric, score

# Fewer samples than this in a group: its value, and every between-group number, is flagged unstable.
MIN_GROUP_SIZE = 10


@dataclass(frozen=True)
class GroupDesign:
    """Which group each sample belongs to (-1: no group), and what is wrong with the grouping."""

    groups: tuple[str, ...]  # sorted group values
    codes: np.ndarray = field(compare=False, repr=False)  # (n,) index into `groups`, -1 for no group
    sizes: tuple[int, ...]
    ungrouped: int
    min_group_size: int

    @property
    def small_groups(self) -> tuple[str, ...]:
        return tuple(g for g, size in zip(self.groups, self.sizes, strict=True) if size < self.min_group_size)

    @property
    def comparable(self) -> bool:
        """Between-group numbers need two groups at least; one group has nothing to compare with."""
        return len(self.groups) >= 2

    def problems(self, where: str) -> list[str]:
        """One line per problem with the grouping, for stderr."""
        lines = []
        if self.ungrouped:
            lines.append(
                f"{where}: {self.ungrouped} of {len(self.codes)} samples have no group value; "
                "they are left out of every group figure"
            )
        if not self.groups:
            lines.append(f"{where}: no sample has a group value; group metrics are not computable")
        elif not self.comparable:
            lines.append(
                f"{where}: only one group ('{self.groups[0]}') is present; differences, ratios, worst "
                "group and parity metrics need two groups and are not computable (rows omitted)"
            )
        if self.small_groups:
            listed = ", ".join(f"'{g}' ({self.sizes[self.groups.index(g)]})" for g in self.small_groups)
            lines.append(
                f"{where}: groups with fewer than {self.min_group_size} samples: {listed}; their values "
                "and every between-group number are unstable (flagged small_groups in the signature)"
            )
        return lines

    def settings(self) -> dict[str, object]:
        """What a between-group number depends on, for its signature."""
        return {
            "groups": list(self.groups),
            "sizes": list(self.sizes),
            "min_group_size": self.min_group_size,
            "small_groups": list(self.small_groups),
            "ungrouped": self.ungrouped,
        }


def group_design(groups: Sequence[object], min_group_size: int = MIN_GROUP_SIZE) -> GroupDesign:
    """Code the group of each sample (see `group_value`); groups are sorted by name."""
    labels = [group_value(value) for value in groups]
    names = tuple(sorted({label for label in labels if label is not None}))
    index = {name: position for position, name in enumerate(names)}
    codes = np.array([-1 if label is None else index[label] for label in labels], dtype=np.int64)
    sizes = tuple(int(np.count_nonzero(codes == position)) for position in range(len(names)))
    return GroupDesign(names, codes, sizes, int(np.count_nonzero(codes < 0)), min_group_size)


def group_value(value: object) -> str | None:
    """A document's group as text; None (or NaN, as pandas reads a missing value) means no group."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def warn(lines: Sequence[str]) -> None:
    for line in lines:
        sys.stderr.write(f"fairness: {line}\n")


@dataclass(frozen=True)
class GroupMetricFrame:
    """One metric overall, per group and between groups (fairlearn MetricFrame's between_groups).

    Every attribute is always present: a number that is not computable (one group only, a metric
    undefined on some group) has value NaN, never 0. `difference` is the largest group value minus
    the smallest, `ratio` the smallest over the largest (NaN when values can be negative or all are
    0), `worst_group` the lowest value when higher is better, else the highest.
    """

    metric: str
    higher_is_better: bool
    signature: str  # the metric's own signature
    design: GroupDesign
    overall: Estimate
    by_group: Mapping[str, Estimate]
    difference: Estimate
    ratio: Estimate
    worst_group: Estimate
    worst_group_name: str | None
    # Permutation-test p-values (NaN: not tested). `difference_p` / `ratio_p`: are the groups'
    # values further apart than shuffled group labels make them? `group_p`: does this group differ
    # from all other groups together? `group_p_holm`: the same, Holm-adjusted across the groups.
    difference_p: float = math.nan
    ratio_p: float = math.nan
    group_p: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    group_p_holm: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    permutations: int = 0


def _group_values(metric: Metric, totals: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(metric.aggregate(totals), dtype=np.float64)


def group_metric_frame(
    metric: Metric,
    statistics: np.ndarray,
    design: GroupDesign,
    *,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    clusters: Sequence[object] | None = None,
    permutations: int = 0,
) -> GroupMetricFrame:
    """Disaggregate `metric` (per-sample statistics of shape (n, k)) by `design`'s groups.

    `overall` and `by_group` are exactly `metrics.score` of the grouped samples and of each group's
    samples (the number a run on that subset would report); the between-group numbers come with a
    bootstrap stratified by group, or one that resamples whole `clusters` (a counterfactual template
    asked once per group) so that paired groups stay paired. With `permutations`, every gap gets a
    permutation-test p-value (group labels shuffled within `clusters`, seeded by `seed`).
    """
    stats = np.asarray(statistics, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[0] != len(design.codes):
        raise ValueError(f"statistics of shape {stats.shape} for {len(design.codes)} grouped samples")
    if not design.groups:
        raise HarnessError("no sample has a group value; group metrics are not computable")
    grouped = design.codes >= 0
    overall = _subset(metric, stats[grouped], bootstrap_resamples, seed, confidence)
    by_group = {
        name: _subset(metric, stats[design.codes == position], bootstrap_resamples, seed, confidence)
        for position, name in enumerate(design.groups)
    }
    count = int(np.count_nonzero(grouped))
    worst = np.min if metric.higher_is_better else np.max

    def worst_value(totals: np.ndarray) -> np.ndarray:
        return np.asarray(worst(_group_values(metric, totals), axis=-1))

    if design.comparable:
        difference, ratio, worst_group = estimate(
            [
                (lambda totals: spread(_group_values(metric, totals)), count),
                (lambda totals: min_over_max(_group_values(metric, totals)), count),
                (worst_value, count),
            ],
            stats,
            design.codes,
            len(design.groups),
            resamples=bootstrap_resamples,
            seed=seed,
            confidence=confidence,
            clusters=clusters,
        )
        values = [by_group[name].value for name in design.groups]
        worst_name = None
        if all(math.isfinite(value) for value in values):
            pick = int(np.argmin(values) if metric.higher_is_better else np.argmax(values))
            worst_name = design.groups[pick]
    else:
        nothing = Estimate(math.nan, None, None, None, count)
        difference = ratio = worst_group = nothing
        worst_name = None
    tested = _gap_tests(metric, stats, design, permutations, seed, clusters)
    return GroupMetricFrame(
        metric=metric.name,
        higher_is_better=metric.higher_is_better,
        signature=metric.signature(),
        design=design,
        overall=overall,
        by_group=MappingProxyType(by_group),
        difference=difference,
        ratio=ratio,
        worst_group=worst_group,
        worst_group_name=worst_name,
        difference_p=tested[0],
        ratio_p=tested[1],
        group_p=MappingProxyType(dict(zip(design.groups, tested[2], strict=True))),
        group_p_holm=MappingProxyType(dict(zip(design.groups, holm(tested[2]), strict=True))),
        permutations=permutations,
    )


def _gap_tests(
    metric: Metric,
    stats: np.ndarray,
    design: GroupDesign,
    permutations: int,
    seed: int,
    clusters: Sequence[object] | None,
) -> tuple[float, float, list[float]]:
    """(difference p, ratio p, each group against the rest p); NaN without two groups."""
    groups = len(design.groups)
    if not design.comparable or permutations <= 0:
        return math.nan, math.nan, [math.nan] * groups

    def against_rest(group: int) -> Quantity:
        def quantity(totals: np.ndarray) -> np.ndarray:
            rest = totals.sum(axis=-2) - totals[..., group, :]
            return np.abs(_group_values(metric, totals[..., group, :]) - _group_values(metric, rest))

        return quantity

    tests: list[tuple[Quantity, Direction]] = [
        (lambda totals: spread(_group_values(metric, totals)), "greater"),
        (lambda totals: min_over_max(_group_values(metric, totals)), "less"),
    ]
    tests += [(against_rest(group), "greater") for group in range(groups)]
    found = permutation_p_values(
        tests, stats, design.codes, groups, permutations=permutations, seed=seed, blocks=clusters
    )
    return found[0], found[1], found[2:]


def _subset(metric: Metric, stats: np.ndarray, resamples: int, seed: int, confidence: float) -> Estimate:
    if stats.shape[0] == 0:
        return Estimate(math.nan, None, None, None, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = score(metric, stats, bootstrap_resamples=resamples, seed=seed, confidence=confidence)
    return Estimate(result.value, result.stderr, result.ci_low, result.ci_high, result.n)


__all__ = [
    "MIN_GROUP_SIZE",
    "GroupDesign",
    "GroupMetricFrame",
    "group_design",
    "group_metric_frame",
    "group_value",
    "warn",
]
