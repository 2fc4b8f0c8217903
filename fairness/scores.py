"""Fairness numbers as score rows: their names, directions and signatures.

Row names (`metric` column of the scores table); `<metric>` is a task metric such as `acc`, `<group>`
a value of the group field (everything after the second '/', and also in the signature as `group`):

metric: value (higher_is_better)
- `group/<metric>/<group>`: the task metric on that group's documents alone (the metric's)
- `fairness/<metric>/difference`: largest group value minus smallest (false)
- `fairness/<metric>/ratio`: smallest group value over largest, 1 = parity (true)
- `fairness/<metric>/worst_group`: the worst group's value (the metric's)
- `group/selection_rate/<group>`: share of the group given the favourable outcome (true)
- `fairness/demographic_parity_difference` / `_ratio`: of the selection rates (false / true)
- `fairness/equalized_odds_difference`: larger of the true- and false-positive-rate differences (false)
- `fairness/equal_opportunity_difference`: true-positive-rate difference (false)
- `fairness/counterfactual_flip_rate`: share of templates whose answer changes with the group (false)
- `fairness/stereotype_preference`, `group/stereotype_preference/<group>`: share of pairs where the
  stereotyping sentence is more likely, 0.5 unbiased (false)
- `fairness/bbq_accuracy_ambiguous`, `fairness/bbq_accuracy_disambiguated`: accuracy (true)
- `fairness/bbq_bias_disambiguated`, `fairness/bbq_bias_ambiguous`: BBQ's S_DIS, S_AMB, 0 unbiased (false)

- `group/counterfactual_flip_rate/attribute=<a>`: the flip rate over the variants of one attribute
  (woman/man, ...) of each template; `group/counterfactual_flip_rate/template=<t>`: the share of a
  template's attributes whose answer flips. For generated text an answer "flips" when it changes
  beyond the group term itself (`fairness.text_scoring.comparable_answer`).

With several group fields (`groups` a mapping of field -> values), every field alone and every
intersection of fields is a design of its own: groups are named `field=value` (an intersection
`gender=woman&age=70`), the between-group rows carry the design's name as a last part
(`fairness/<metric>/difference/gender&age`, `fairness/demographic_parity_difference/gender`), and
`fairness/<metric>/worst_intersection` is the worst intersection cell of any order. Intersection
cells smaller than the minimum group size are left out and listed (`too_small` in the signature).

Significance: with `permutations` > 0 every between-group row's signature carries `p_value`, a
permutation test (group labels shuffled, within templates for paired probes and within gold class
for error rates), and every per-group row's the p-value of "this group differs from the others
together" with `p_holm`, Holm-adjusted across the groups of its design (`correction:holm`,
`family`: how many). With several designs, the between-group rows' `p_holm` is adjusted across them.

BBQ rows also come per group (`group/bbq_bias_ambiguous/<group>`, ...). The signed bias numbers
(stereotype preference, S_DIS, S_AMB) count as lower-is-better because the probes look for
stereotyping, which pushes them up; a value far below the unbiased point is a bias too.

A number that is not computable (one group only; a rate with no sample to divide by) gets no row and
a line on stderr: a missing row cannot be mistaken for perfect parity, a 0 could.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.fairness.bootstrap import Estimate
from harness.fairness.decisions import DISPARITIES, Decisions, decision_fairness
from harness.fairness.groups import (
    MIN_GROUP_SIZE,
    group_metric_frame,
    warn,
)
from harness.fairness.intersections import FieldDesign, field_designs
from harness.fairness.permutation import holm
from harness.metrics import Metric, Score
from harness.metrics.classification import Classification
from harness.signatures import decode_setting, make_signature


class ScoreRows:
    """Collects score rows; numbers that are not computable are named, not stored."""

    def __init__(self, settings: Mapping[str, object]) -> None:
        self.settings = dict(settings)
        self.scores: list[Score] = []
        self.omitted: list[str] = []

    def add(
        self,
        name: str,
        found: Estimate,
        higher_is_better: bool,
        extra: Mapping[str, object] | None = None,
        interval: str = "stratified-bootstrap",
    ) -> None:
        """`interval` names how the interval was made: the task metric's own (`metric`: closed form
        for means) or the stratified bootstrap of `fairness.bootstrap`."""
        if not found.computable:
            self.omitted.append(name)
            return
        settings = {**(extra or {}), **self.settings, "interval": interval}
        signature = make_signature(name, settings, ("numpy",))
        self.scores.append(
            Score(
                name,
                found.value,
                found.stderr,
                found.ci_low,
                found.ci_high,
                found.n,
                higher_is_better,
                signature,
            )
        )

    def report(self, where: str) -> list[Score]:
        if self.omitted:
            warn([f"{where}: not computable, so no row (never reported as 0): {', '.join(self.omitted)}"])
        return self.scores


def signature_settings(signature: str) -> dict[str, Any]:
    """The settings of a fairness row's signature (p_value, p_holm, group, fields, small, ...)."""
    settings: dict[str, Any] = {}
    for part in signature.split("|")[1:]:
        key, separator, value = part.partition(":")
        if separator:
            settings[key] = decode_setting(value)
    return settings


def row_settings(
    group_field: str | Sequence[str] | None, resamples: int, seed: int, confidence: float
) -> dict[str, object]:
    return {
        "group_field": group_field
        if group_field is None or isinstance(group_field, str)
        else list(group_field),
        "resamples": resamples,
        "seed": seed,
        "confidence": confidence,
    }


def _tested(p_value: float, extra: Mapping[str, object] | None = None) -> dict[str, object]:
    """Signature settings of a permutation test; nothing when it was not run (NaN)."""
    if not math.isfinite(p_value):
        return {}
    return {"p_value": round(p_value, 6), "test": "permutation", **(extra or {})}


def _holm_family(p_values: Sequence[float], what: str) -> list[dict[str, object]]:
    adjusted = holm(p_values)
    family = sum(math.isfinite(p) for p in p_values)
    return [
        {"p_holm": round(p, 6), "correction": "holm", "family": f"{family} {what}"}
        if math.isfinite(p)
        else {}
        for p in adjusted
    ]


def _suffix(designs: Sequence[FieldDesign], design: FieldDesign) -> str:
    """With one field the row names are the plain ones; with several, they name their design."""
    return "" if len(designs) == 1 else f"/{design.name}"


def _metric_rows(
    rows: ScoreRows,
    metric: Metric,
    stats: np.ndarray,
    designs: Sequence[FieldDesign],
    unit: str,
    options: dict[str, Any],
) -> None:
    frames = [group_metric_frame(metric, stats, fd.design, **options) for fd in designs]
    permutations = {"permutations": int(options.get("permutations", 0))}
    families: dict[str, list[dict[str, object]]] = {
        kind: _holm_family([getattr(frame, f"{kind}_p") for frame in frames], "designs")
        if len(designs) > 1
        else [{}] * len(designs)
        for kind in ("difference", "ratio")
    }
    cells: list[tuple[str, FieldDesign, Estimate]] = []
    for index, (fd, frame) in enumerate(zip(designs, frames, strict=True)):
        design = fd.design
        base: dict[str, object] = {"of": frame.signature}
        group_tests = _holm_family([frame.group_p.get(g, math.nan) for g in design.groups], "groups")
        for (group, found), holm_settings in zip(frame.by_group.items(), group_tests, strict=True):
            small = group in design.small_groups
            test = _tested(frame.group_p.get(group, math.nan), {**permutations, **holm_settings})
            rows.add(
                f"group/{metric.name}/{group}",
                found,
                metric.higher_is_better,
                {**base, "group": group, "fields": list(fd.fields), "small": small, **test},
                interval="metric",
            )
            if fd.intersection:
                cells.append((group, fd, found))
        between = {**base, "method": "between_groups", **fd.settings(), "unit": unit}
        suffix = _suffix(designs, fd)
        difference = {
            **between,
            **_tested(frame.difference_p, {**permutations, **families["difference"][index]}),
        }
        ratio = {**between, **_tested(frame.ratio_p, {**permutations, **families["ratio"][index]})}
        rows.add(f"fairness/{metric.name}/difference{suffix}", frame.difference, False, difference)
        rows.add(f"fairness/{metric.name}/ratio{suffix}", frame.ratio, True, ratio)
        rows.add(
            f"fairness/{metric.name}/worst_group{suffix}",
            frame.worst_group,
            metric.higher_is_better,
            {**between, "worst": frame.worst_group_name},
        )
    _worst_intersection(rows, metric, cells, unit)


def _worst_intersection(
    rows: ScoreRows, metric: Metric, cells: Sequence[tuple[str, FieldDesign, Estimate]], unit: str
) -> None:
    """The worst intersection cell over every intersection design (its own value and interval)."""
    found = [(name, fd, estimate) for name, fd, estimate in cells if estimate.computable]
    if not found:
        return
    pick = (min if metric.higher_is_better else max)(found, key=lambda cell: cell[2].value)
    name, fd, estimate = pick
    rows.add(
        f"fairness/{metric.name}/worst_intersection",
        estimate,
        metric.higher_is_better,
        {"group": name, "fields": list(fd.fields), "cells": len(found), "unit": unit},
        interval="metric",
    )


def _decision_rows(
    rows: ScoreRows,
    metric_options: dict[str, Any],
    decisions: Decisions,
    designs: Sequence[FieldDesign],
    unit: str,
) -> None:
    results = [decision_fairness(decisions, fd.design, **metric_options) for fd in designs]
    permutations = {"permutations": int(metric_options.get("permutations", 0))}
    names = {
        "dp_difference": ("fairness/demographic_parity_difference", False, {}),
        "dp_ratio": ("fairness/demographic_parity_ratio", True, {}),
        "eo_difference": ("fairness/equalized_odds_difference", False, {"agg": "worst_case"}),
        "eop_difference": ("fairness/equal_opportunity_difference", False, {}),
    }
    families: dict[str, list[dict[str, object]]] = {
        kind: _holm_family([result.p_values.get(kind, math.nan) for result in results], "designs")
        if len(designs) > 1
        else [{}] * len(designs)
        for kind in DISPARITIES
    }
    for index, (fd, result) in enumerate(zip(designs, results, strict=True)):
        design = fd.design
        base = {"favorable": result.positive, "unit": unit}
        for group, rates in result.by_group.items():
            small = group in design.small_groups
            rows.add(
                f"group/selection_rate/{group}",
                rates.selection_rate,
                True,
                {**base, "group": group, "fields": list(fd.fields), "small": small},
            )
        between = {**base, "method": "between_groups", **fd.settings()}
        suffix = _suffix(designs, fd)
        estimates = {
            "dp_difference": result.demographic_parity_difference,
            "dp_ratio": result.demographic_parity_ratio,
            "eo_difference": result.equalized_odds_difference,
            "eop_difference": result.equal_opportunity_difference,
        }
        for kind, (name, higher, extra) in names.items():
            test = _tested(result.p_values.get(kind, math.nan), {**permutations, **families[kind][index]})
            rows.add(f"{name}{suffix}", estimates[kind], higher, {**between, **extra, **test})


def grouped_rows(
    rows: ScoreRows,
    metrics: Sequence[Metric],
    statistics: Sequence[np.ndarray],
    designs: Sequence[FieldDesign],
    decisions: Decisions | None,
    options: dict[str, Any],
    clusters: tuple[str, Sequence[object]] | None = None,
) -> None:
    """`clusters`: (field name, each sample's cluster) when whole clusters are to be resampled
    (and group labels shuffled only within a cluster)."""
    designs = [fd for fd in designs if fd.design.groups]
    if not designs:
        return
    unit = clusters[0] if clusters is not None else "sample"
    options = {**options, "clusters": clusters[1] if clusters is not None else None}
    for metric, stats in zip(metrics, statistics, strict=True):
        _metric_rows(rows, metric, stats, designs, unit, options)
    if decisions is not None:
        _decision_rows(rows, options, decisions, designs, unit)


def _columns(
    groups: Sequence[object] | Mapping[str, Sequence[object]], field: str | None
) -> dict[str, Sequence[object]]:
    if isinstance(groups, Mapping):
        return dict(groups)
    return {field or "group": groups}


def group_scores(
    metrics: Sequence[Metric],
    statistics: Sequence[np.ndarray],
    groups: Sequence[str | None] | Mapping[str, Sequence[object]],
    *,
    decisions: Decisions | None = None,
    group_field: str | None = None,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    min_group_size: int = MIN_GROUP_SIZE,
    permutations: int = 1000,
    where: str = "scores",
) -> list[Score]:
    """Score rows of each metric per group and between groups (and of `decisions`, when given).

    `statistics[i]` is metric i's per-sample statistics (n, k). `groups` is each sample's group
    (None for none), or a mapping of several group fields to their values: then every field and
    every intersection of fields gets rows (see the module docstring). Problems with the grouping
    (samples without a group, one group only, small groups, intersections too small to report) and
    numbers that are not computable are reported on stderr, prefixed with `where`.
    """
    columns = _columns(groups, group_field)
    size = len(next(iter(columns.values()))) if columns else 0
    if len(metrics) != len(statistics):
        raise HarnessError(f"{len(metrics)} metrics but {len(statistics)} statistics matrices")
    for metric, stats in zip(metrics, statistics, strict=True):
        if np.asarray(stats).shape[0] != size:
            raise HarnessError(
                f"metric '{metric.name}' has {np.asarray(stats).shape[0]} samples for {size} groups"
            )
    if decisions is not None and len(decisions.y_true) != size:
        raise HarnessError(f"{len(decisions.y_true)} decisions for {size} groups")
    designs = field_designs(columns, min_group_size=min_group_size)
    warn([line for fd in designs for line in design_problems(fd, designs, where)])
    field_setting = group_field if not isinstance(groups, Mapping) else list(columns)
    rows = ScoreRows(row_settings(field_setting, bootstrap_resamples, seed, confidence))
    options = {
        "bootstrap_resamples": bootstrap_resamples,
        "seed": seed,
        "confidence": confidence,
        "permutations": permutations,
    }
    grouped_rows(rows, metrics, statistics, designs, decisions, options)
    return rows.report(where)


def design_problems(fd: FieldDesign, designs: Sequence[FieldDesign], where: str) -> list[str]:
    # With one field, the messages read as they always have (no design name in brackets).
    return fd.design.problems(where) if len(designs) == 1 else fd.problems(where)


def _favourable_label(metrics: Sequence[Metric], labels: Sequence[str | None]) -> str | None:
    for metric in metrics:
        if isinstance(metric, Classification) and metric.average == "binary":
            return str(metric.pos_label)
    present = {label for label in labels if label is not None}
    return "1" if present <= {"0", "1"} and present else None


def prediction_group_scores(
    metrics: Sequence[Metric],
    statistics: Sequence[np.ndarray],
    groups: Sequence[str | None],
    *,
    labels: Sequence[str | None] | None = None,
    predictions: Sequence[str | None] | None = None,
    positive_label: str | None = None,
    group_field: str | None = None,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    where: str = "harness score",
) -> list[Score]:
    """`group_scores` for predictions scored elsewhere (`harness score --group-field`).

    With gold `labels` and `predictions`, the parity metrics treat `positive_label` as the favourable
    outcome: by default the pos_label of a binary classification metric among `metrics`, else "1"
    when the labels are 0/1; otherwise they are skipped with a note on stderr.
    """
    decisions = None
    if labels is not None and predictions is not None and any(label is not None for label in labels):
        positive = positive_label if positive_label is not None else _favourable_label(metrics, labels)
        if positive is None:
            warn([f"{where}: parity metrics skipped; name the favourable label (a binary f1's pos_label)"])
        else:
            decisions = Decisions.from_labels(labels, predictions, positive)
    return group_scores(
        metrics,
        statistics,
        groups,
        decisions=decisions,
        group_field=group_field,
        bootstrap_resamples=bootstrap_resamples,
        seed=seed,
        # As for evaluated tasks: as many shuffles as resamples, none when resampling is off.
        permutations=bootstrap_resamples,
        where=where,
    )


__all__ = [
    "ScoreRows",
    "design_problems",
    "group_scores",
    "grouped_rows",
    "prediction_group_scores",
    "row_settings",
    "signature_settings",
]
