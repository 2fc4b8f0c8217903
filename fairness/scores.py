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

BBQ rows also come per group (`group/bbq_bias_ambiguous/<group>`, ...). The signed bias numbers
(stereotype preference, S_DIS, S_AMB) count as lower-is-better because the probes look for
stereotyping, which pushes them up; a value far below the unbiased point is a bias too.

A number that is not computable (one group only; a rate with no sample to divide by) gets no row and
a line on stderr: a missing row cannot be mistaken for perfect parity, a 0 could.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from harness.errors import HarnessError
from harness.fairness import probes
from harness.fairness.bootstrap import Estimate
from harness.fairness.decisions import DecisionFairness, Decisions, decision_fairness
from harness.fairness.groups import (
    MIN_GROUP_SIZE,
    GroupDesign,
    group_design,
    group_metric_frame,
    group_value,
    warn,
)
from harness.metrics import Metric, SampleOutcome, Score
from harness.metrics.classification import Classification
from harness.signatures import make_signature

if TYPE_CHECKING:
    from harness.tasks import Task, TaskInstance


class EvaluatedTask(Protocol):
    """What the fairness rows read of one evaluated task (`harness.runner.TaskEvaluation` has it)."""

    @property
    def task(self) -> Task: ...

    @property
    def instances(self) -> Sequence[TaskInstance]: ...

    @property
    def outcomes(self) -> Sequence[SampleOutcome]: ...

    @property
    def statistics(self) -> Mapping[str, np.ndarray]: ...


class _Rows:
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


def _settings(group_field: str | None, resamples: int, seed: int, confidence: float) -> dict[str, object]:
    return {
        "group_field": group_field,
        "resamples": resamples,
        "seed": seed,
        "confidence": confidence,
    }


def _metric_rows(
    rows: _Rows, metric: Metric, stats: np.ndarray, design: GroupDesign, unit: str, options: dict[str, Any]
) -> None:
    frame = group_metric_frame(metric, stats, design, **options)
    base = {"of": frame.signature}
    for group, found in frame.by_group.items():
        small = group in design.small_groups
        rows.add(
            f"group/{metric.name}/{group}",
            found,
            metric.higher_is_better,
            {**base, "group": group, "small": small},
            interval="metric",
        )
    between = {**base, "method": "between_groups", **design.settings(), "unit": unit}
    rows.add(f"fairness/{metric.name}/difference", frame.difference, False, between)
    rows.add(f"fairness/{metric.name}/ratio", frame.ratio, True, between)
    rows.add(f"fairness/{metric.name}/worst_group", frame.worst_group, metric.higher_is_better, between)


def _decision_rows(rows: _Rows, result: DecisionFairness, design: GroupDesign, unit: str) -> None:
    base = {"favorable": result.positive, "unit": unit}
    for group, rates in result.by_group.items():
        small = group in design.small_groups
        rows.add(
            f"group/selection_rate/{group}",
            rates.selection_rate,
            True,
            {**base, "group": group, "small": small},
        )
    between = {**base, "method": "between_groups", **design.settings()}
    rows.add("fairness/demographic_parity_difference", result.demographic_parity_difference, False, between)
    rows.add("fairness/demographic_parity_ratio", result.demographic_parity_ratio, True, between)
    rows.add(
        "fairness/equalized_odds_difference",
        result.equalized_odds_difference,
        False,
        {**between, "agg": "worst_case"},
    )
    rows.add("fairness/equal_opportunity_difference", result.equal_opportunity_difference, False, between)


def _grouped_rows(
    rows: _Rows,
    metrics: Sequence[Metric],
    statistics: Sequence[np.ndarray],
    design: GroupDesign,
    decisions: Decisions | None,
    options: dict[str, Any],
    clusters: tuple[str, Sequence[object]] | None = None,
) -> None:
    """`clusters`: (field name, each sample's cluster) when whole clusters are to be resampled."""
    if not design.groups:
        return
    unit = clusters[0] if clusters is not None else "sample"
    options = {**options, "clusters": clusters[1] if clusters is not None else None}
    for metric, stats in zip(metrics, statistics, strict=True):
        _metric_rows(rows, metric, stats, design, unit, options)
    if decisions is not None:
        _decision_rows(rows, decision_fairness(decisions, design, **options), design, unit)


def group_scores(
    metrics: Sequence[Metric],
    statistics: Sequence[np.ndarray],
    groups: Sequence[str | None],
    *,
    decisions: Decisions | None = None,
    group_field: str | None = None,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    min_group_size: int = MIN_GROUP_SIZE,
    where: str = "scores",
) -> list[Score]:
    """Score rows of each metric per group and between groups (and of `decisions`, when given).

    `statistics[i]` is metric i's per-sample statistics (n, k); `groups[i]` sample i's group, None for
    none. Problems with the grouping (samples without a group, one group only, small groups) and
    numbers that are not computable are reported on stderr, prefixed with `where`.
    """
    if len(metrics) != len(statistics):
        raise HarnessError(f"{len(metrics)} metrics but {len(statistics)} statistics matrices")
    for metric, stats in zip(metrics, statistics, strict=True):
        if np.asarray(stats).shape[0] != len(groups):
            raise HarnessError(
                f"metric '{metric.name}' has {np.asarray(stats).shape[0]} samples for {len(groups)} groups"
            )
    if decisions is not None and len(decisions.y_true) != len(groups):
        raise HarnessError(f"{len(decisions.y_true)} decisions for {len(groups)} groups")
    design = group_design(groups, min_group_size)
    warn(design.problems(where))
    rows = _Rows(_settings(group_field, bootstrap_resamples, seed, confidence))
    options = {"bootstrap_resamples": bootstrap_resamples, "seed": seed, "confidence": confidence}
    _grouped_rows(rows, metrics, statistics, design, decisions, options)
    return rows.report(where)


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
        where=where,
    )


def task_fairness_scores(evaluation: EvaluatedTask, bootstrap_resamples: int, seed: int) -> list[Score]:
    """Extra score rows of one evaluated task: group rows when its YAML names a `group_field`, and
    probe rows when its documents carry probe fields (see `fairness.probes`); none otherwise."""
    task = evaluation.task
    where = f"task '{task.name}'"
    docs = [instance.doc for instance in evaluation.instances]
    field = task.config.group_field
    fields = {name: probes.field_values(docs, name) for name in probes.PROBE_FIELDS}
    warn([f"{where}: {problem}; that probe is skipped" for _, problem in fields.values() if problem])
    values = {name: found for name, (found, _) in fields.items() if found is not None}
    if values and task.output_type != "multiple_choice":
        warn([f"{where}: probe fields {', '.join(values)} need a multiple_choice task; probes skipped"])
        values = {}
    rows = _Rows(_settings(field, bootstrap_resamples, seed, 0.95))
    options: dict[str, Any] = {"bootstrap_resamples": bootstrap_resamples, "seed": seed}
    answers = probes.predicted_choices(evaluation.outcomes)
    gold = np.array([-1 if i.gold is None else i.gold for i in evaluation.instances], dtype=np.int64)
    design = None
    if field is not None:
        # The task turns a null group value into the text "None"; the document says it has none.
        design = group_design([group_value(doc.get(field)) for doc in docs])
        warn(design.problems(where))
        decisions = None
        if probes.FAVORABLE_FIELD in values:
            favorable = _indices(values[probes.FAVORABLE_FIELD], probes.FAVORABLE_FIELD, where)
            if favorable is not None:
                decisions = Decisions(
                    gold == favorable, answers == favorable, f"doc.{probes.FAVORABLE_FIELD}"
                )
        statistics = [evaluation.statistics[metric.name] for metric in task.metrics]
        # Counterfactual variants of one template are paired: the bootstrap keeps them together.
        templates = values.get(probes.TEMPLATE_FIELD)
        clusters = (probes.TEMPLATE_FIELD, templates) if templates is not None else None
        _grouped_rows(rows, task.metrics, statistics, design, decisions, options, clusters)
    elif probes.FAVORABLE_FIELD in values:
        warn([f"{where}: '{probes.FAVORABLE_FIELD}' needs a group_field in the task YAML; parity skipped"])
    _probe_rows(rows, values, answers, gold, design, where, options)
    return rows.report(where)


def _indices(values: Sequence[Any], name: str, where: str) -> np.ndarray | None:
    try:
        return probes.choice_indices(values, name)
    except ValueError as error:
        warn([f"{where}: {error}; that probe is skipped"])
        return None


def _probe_rows(
    rows: _Rows,
    values: Mapping[str, list[Any]],
    answers: np.ndarray,
    gold: np.ndarray,
    design: GroupDesign | None,
    where: str,
    options: dict[str, Any],
) -> None:
    codes = design.codes if design is not None else np.full(len(answers), -1, dtype=np.int64)
    groups = design.groups if design is not None else ()
    resampling = {"resamples": int(options["bootstrap_resamples"]), "seed": int(options["seed"])}
    if probes.TEMPLATE_FIELD in values:
        flip = probes.counterfactual_flip_rate(values[probes.TEMPLATE_FIELD], answers, **resampling)
        rows.add("fairness/counterfactual_flip_rate", flip, False, {"unit": probes.TEMPLATE_FIELD})
    if probes.STEREOTYPE_FIELD in values:
        stereotype = _indices(values[probes.STEREOTYPE_FIELD], probes.STEREOTYPE_FIELD, where)
        if stereotype is not None:
            overall, per_group = probes.stereotype_preference(
                answers == stereotype, codes, len(groups), **resampling
            )
            unbiased: dict[str, object] = {"unbiased": 0.5}
            rows.add("fairness/stereotype_preference", overall, False, unbiased)
            for name, share in zip(groups, per_group, strict=True):
                rows.add(f"group/stereotype_preference/{name}", share, False, {**unbiased, "group": name})
    bbq = (probes.CONDITION_FIELD, probes.BIASED_FIELD, probes.UNKNOWN_FIELD)
    if all(name in values for name in bbq):
        _bbq_rows(rows, values, answers, gold, codes, groups, where, resampling)
    elif any(name in values for name in bbq):
        warn([f"{where}: BBQ-style scores need all of {', '.join(bbq)}; skipped"])


def _bbq_rows(
    rows: _Rows,
    values: Mapping[str, list[Any]],
    answers: np.ndarray,
    gold: np.ndarray,
    codes: np.ndarray,
    groups: tuple[str, ...],
    where: str,
    resampling: dict[str, int],
) -> None:
    biased = _indices(values[probes.BIASED_FIELD], probes.BIASED_FIELD, where)
    unknown = _indices(values[probes.UNKNOWN_FIELD], probes.UNKNOWN_FIELD, where)
    if biased is None or unknown is None:
        return
    conditions = values[probes.CONDITION_FIELD]
    try:
        overall, per_group = probes.ambiguity_bias(
            conditions, answers, gold, biased, unknown, codes, len(groups), **resampling
        )
    except ValueError as error:
        warn([f"{where}: {error}; the BBQ-style scores are skipped"])
        return
    labelled: list[tuple[str, str, probes.AmbiguityBias, dict[str, object]]] = [
        ("fairness/", "", overall, {})
    ]
    for name, found in zip(groups, per_group, strict=True):
        labelled.append(("group/", f"/{name}", found, {"group": name}))
    for prefix, suffix, found, extra in labelled:
        unbiased = {**extra, "unbiased": 0}
        rows.add(f"{prefix}bbq_accuracy_ambiguous{suffix}", found.accuracy_ambiguous, True, extra)
        rows.add(f"{prefix}bbq_accuracy_disambiguated{suffix}", found.accuracy_disambiguated, True, extra)
        rows.add(f"{prefix}bbq_bias_disambiguated{suffix}", found.bias_disambiguated, False, unbiased)
        rows.add(f"{prefix}bbq_bias_ambiguous{suffix}", found.bias_ambiguous, False, unbiased)


__all__ = ["group_scores", "prediction_group_scores", "task_fairness_scores"]
