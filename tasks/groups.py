"""Groups of tasks (lm-eval's `group:` files) and their aggregate scores.

A group lists tasks, tags, other groups or inline task configs under `task:`; its `aggregate_metric_list`
says which metrics to average over every leaf task below it (sub-groups' leaves included), weighted by
document count unless `weight_by_size: false`. Values and standard errors follow lm-eval 0.4.13: a weighted
mean with the pooled-variance standard error, or a plain mean with sqrt(sum se^2) / k. A group without an
`aggregate_metric_list` only collects its tasks and reports no number of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.metric_names import filtered_metric_name
from harness.metrics import Score
from harness.metrics.base import make_signature
from harness.metrics.uncertainty import wilson_interval
from harness.tasks.task import Task

__all__ = ["GROUP_KEYS", "AggregateSpec", "TaskGroup", "aggregate_specs", "group_scores"]

# The keys that describe the group itself; every other key of a group file overrides its tasks' keys.
GROUP_KEYS = frozenset({"group", "group_alias", "task", "aggregate_metric_list", "metadata"})
AGGREGATE_KEYS = frozenset({"metric", "filter_list", "aggregation", "weight_by_size"})
# Two-sided 95% normal quantile, for the interval around a group's aggregate.
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class AggregateSpec:
    metric: str
    filters: tuple[str, ...] | None = None  # None: every filter the leaf tasks report this metric under
    weight_by_size: bool = True


@dataclass(frozen=True)
class TaskGroup:
    name: str
    members: tuple[Task | TaskGroup, ...]
    aggregates: tuple[AggregateSpec, ...] = ()
    alias: str | None = None
    version: str = "0"

    def leaf_tasks(self) -> Iterator[Task]:
        for member in self.members:
            if isinstance(member, TaskGroup):
                yield from member.leaf_tasks()
            else:
                yield member

    def subgroups(self) -> Iterator[TaskGroup]:
        for member in self.members:
            if isinstance(member, TaskGroup):
                yield member
                yield from member.subgroups()


def aggregate_specs(raw: Any, source: Path | None) -> tuple[AggregateSpec, ...]:
    where = f"{source}: " if source is not None else ""
    if raw is None:
        return ()
    entries = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list):
        raise HarnessError(f"{where}aggregate_metric_list must be a list of metric entries")
    specs = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("metric"), str):
            raise HarnessError(f"{where}aggregate_metric_list: each entry needs a 'metric' name")
        unknown = sorted(set(entry) - AGGREGATE_KEYS)
        if unknown:
            raise HarnessError(f"{where}aggregate_metric_list: unknown key '{unknown[0]}'")
        if entry.get("aggregation", "mean") != "mean":
            raise HarnessError(f"{where}aggregate_metric_list: aggregation must be 'mean' (as in lm-eval)")
        filters = entry.get("filter_list")
        if isinstance(filters, str):
            filters = [filters]
        if filters is not None and (
            not isinstance(filters, list) or not all(isinstance(f, str) for f in filters)
        ):
            raise HarnessError(f"{where}aggregate_metric_list: filter_list must be a filter name or a list")
        weight = entry.get("weight_by_size", True)
        if not isinstance(weight, bool):
            raise HarnessError(f"{where}aggregate_metric_list: weight_by_size must be true or false")
        specs.append(AggregateSpec(entry["metric"], tuple(filters) if filters is not None else None, weight))
    return tuple(specs)


def _filters_reporting(metric: str, leaf_scores: Sequence[Mapping[str, Score]]) -> list[str]:
    found = set()
    for scores in leaf_scores:
        for name in scores:
            base, _, filter_name = name.partition(",")
            if base == metric:
                found.add(filter_name or "none")
    return sorted(found)


def group_scores(group: TaskGroup, scores_by_task: Mapping[str, Sequence[Score]]) -> list[Score]:
    """The group's aggregate rows, computed from its leaf tasks' scores."""
    leaves = [
        {score.metric: score for score in scores_by_task[task.name]}
        for task in group.leaf_tasks()
        if task.name in scores_by_task
    ]
    rows = []
    for spec in group.aggregates:
        filters = spec.filters if spec.filters is not None else _filters_reporting(spec.metric, leaves)
        for filter_name in filters:
            key = filtered_metric_name(spec.metric, filter_name)
            found = [scores[key] for scores in leaves if key in scores]
            if found:
                rows.append(_aggregate(group, spec, key, found))
    return rows


def _aggregate(group: TaskGroup, spec: AggregateSpec, key: str, scores: Sequence[Score]) -> Score:
    sizes = [score.n for score in scores]
    weights = sizes if spec.weight_by_size else [1] * len(scores)
    value = sum(score.value * weight for score, weight in zip(scores, weights, strict=True)) / sum(weights)
    stderrs = [score.stderr for score in scores]
    stderr: float | None = None
    if all(s is not None and math.isfinite(s) for s in stderrs):
        known = [float(s) for s in stderrs if s is not None]
        if spec.weight_by_size:
            pooled = sum((n - 1) * s**2 * n for n, s in zip(sizes, known, strict=True)) / (
                sum(sizes) - len(sizes)
            )
            stderr = math.sqrt(pooled / sum(sizes)) if sum(sizes) > len(sizes) else None
        else:
            stderr = math.sqrt(sum(s**2 for s in known)) / len(known)
    signature = make_signature(
        key.partition(",")[0],
        {"group": group.name, "weight_by_size": spec.weight_by_size, "tasks": len(scores)},
    )
    ci_low, ci_high = _group_interval(value, stderr, scores)
    return Score(
        metric=key,
        value=value,
        stderr=stderr,
        ci_low=ci_low,
        ci_high=ci_high,
        n=sum(sizes),
        higher_is_better=scores[0].higher_is_better,
        signature=signature,
    )


def _group_interval(
    value: float, stderr: float | None, scores: Sequence[Score]
) -> tuple[float | None, float | None]:
    """The group row's 95% interval. The stderr stays lm-eval's pooled one (parity); when every member
    is a proportion (value and interval inside [0, 1]), the interval is Wilson's at the effective sample
    size p(1-p)/stderr**2, as for a task's own proportions, so it never leaves [0, 1]."""
    if stderr is None:
        return None, None
    proportions = all(
        0.0 <= score.value <= 1.0
        and score.ci_low is not None
        and score.ci_high is not None
        and 0.0 <= score.ci_low <= score.ci_high <= 1.0
        for score in scores
    )
    if not proportions or not 0.0 <= value <= 1.0:
        return value - _Z95 * stderr, value + _Z95 * stderr
    if value in (0.0, 1.0):  # every document at one end: Wilson with the pooled document count
        total = sum(score.n for score in scores)
        return wilson_interval(value * total, total)
    if stderr == 0.0:
        return value, value
    effective_n = value * (1.0 - value) / stderr**2
    return wilson_interval(value * effective_n, effective_n)
