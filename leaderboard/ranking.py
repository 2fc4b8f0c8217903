"""The leaderboard table: runs (or models) × tasks for one metric, with intervals, ranks and filters.

Rank groups follow the rule popularised by Chatbot Arena: a row's rank is one plus the number of
rows whose interval lies entirely on the better side of its own. Rows whose intervals overlap can
share a rank, and no pair is separated unless the data separates them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from statistics import NormalDist
from typing import cast

import numpy as np
import pandas as pd

__all__ = [
    "AVERAGE",
    "MEAN_RANK",
    "RANK",
    "Leaderboard",
    "LeaderboardFilters",
    "build_leaderboard",
    "display_table",
    "filter_scores",
    "interval_text",
    "metric_choices",
    "primary_metrics",
    "rank_choices",
    "rank_groups",
]

AVERAGE = "average"
MEAN_RANK = "mean rank"
RANK = "rank"
TASK_COUNT = "tasks"
RUN_COLUMNS = ("model", "experiment", "step", "created_at", "run_id")
MODEL_COLUMNS = ("model", "experiment", "runs", "created_at", "run_id")


@dataclass(frozen=True)
class LeaderboardFilters:
    """Empty tuples mean "all"; dates are inclusive and compared in UTC."""

    experiments: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None
    search: str = ""


@dataclass(frozen=True)
class Leaderboard:
    """`table` has identity columns, then per task `<task>`, `<task> ci_low`, `<task> ci_high`,
    then `average` (+ its interval, only when every task shows the same metric), `mean rank`,
    `tasks` (how many task values the row has) and `rank` (rank group by `rank_by`)."""

    table: pd.DataFrame
    tasks: tuple[str, ...]
    metrics: Mapping[str, str] = field(default_factory=dict)  # task -> metric shown for it
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)  # by task, and by "average"
    rank_by: str | None = None
    identity_columns: tuple[str, ...] = RUN_COLUMNS

    @property
    def has_average(self) -> bool:
        return AVERAGE in self.table.columns


def metric_choices(scores: pd.DataFrame) -> list[str]:
    """Metric names, the one covering the most tasks first."""
    if scores.empty:
        return []
    coverage = scores.groupby("metric")["task"].nunique()
    return sorted(coverage.index, key=lambda name: (-int(coverage[name]), str(name)))


def primary_metrics(scores: pd.DataFrame) -> dict[str, str]:
    """Each task's first metric in stored order, i.e. the first of its `metric_list`."""
    if scores.empty:
        return {}
    order = "file_row_number" if "file_row_number" in scores.columns else "metric"
    first = scores.sort_values([order, "metric"], kind="stable").drop_duplicates("task")
    return dict(zip(first["task"].astype(str), first["metric"].astype(str), strict=True))


def filter_scores(scores: pd.DataFrame, filters: LeaderboardFilters) -> pd.DataFrame:
    keep = pd.Series(True, index=scores.index)
    if filters.experiments:
        keep &= scores["experiment"].isin(filters.experiments)
    if filters.models:
        keep &= scores["model"].isin(filters.models)
    if filters.tasks:
        keep &= scores["task"].isin(filters.tasks)
    if filters.start is not None or filters.end is not None:
        days = pd.to_datetime(scores["created_at"], utc=True).dt.date
        if filters.start is not None:
            keep &= days >= filters.start
        if filters.end is not None:
            keep &= days <= filters.end
    text = filters.search.strip().lower()
    if text:
        haystack = (
            scores["model"].astype(str) + "\n" + scores["experiment"].astype(str) + "\n" + scores["run_id"]
        ).str.lower()
        keep &= haystack.str.contains(text, regex=False)
    return scores[keep]


def _stderr(rows: pd.DataFrame, z: float) -> pd.Series:
    """The stored stderr, or one read back from a symmetric-enough interval when only that is stored."""
    from_interval = (rows["ci_high"].astype(float) - rows["ci_low"].astype(float)) / (2 * z)
    return rows["stderr"].astype(float).fillna(from_interval)


def rank_groups(values: pd.Series, low: pd.Series, high: pd.Series, higher_is_better: bool) -> pd.Series:
    """1 + the number of rows whose whole interval is better than this row's whole interval."""
    value = values.to_numpy(dtype=float)
    lo = low.astype(float).fillna(values.astype(float)).to_numpy(dtype=float)
    hi = high.astype(float).fillna(values.astype(float)).to_numpy(dtype=float)
    present = ~np.isnan(value)
    # better[i, j]: row j's whole interval is on the better side of row i's whole interval.
    better = lo[None, :] > hi[:, None] if higher_is_better else hi[None, :] < lo[:, None]
    better &= present[None, :]
    ranks = pd.Series(better.sum(axis=1) + 1, index=values.index, dtype="Int64")
    ranks[~present] = pd.NA
    return ranks


def rank_choices(tasks: tuple[str, ...], has_average: bool) -> tuple[str, ...]:
    """What a leaderboard can be ranked by: the average (when there is one), mean rank, a task."""
    return (*((AVERAGE,) if has_average else ()), MEAN_RANK, *tasks)


def _latest_per_model(chosen: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Models mode: each model's newest score per task; returns (scores, identity rows)."""
    ordered = chosen.sort_values(["created_at", "run_id"], kind="stable")
    latest = ordered.drop_duplicates(["model", "task"], keep="last")
    identity = (
        ordered.groupby("model", dropna=False)
        .agg(
            experiment=("experiment", lambda s: ", ".join(sorted({str(v) for v in s.dropna()}))),
            runs=("run_id", "nunique"),
            created_at=("created_at", "max"),
            run_id=("run_id", "last"),
        )
        .reset_index()
    )
    return latest, identity


def _pick_metric(scores: pd.DataFrame, metric: str | None) -> tuple[pd.DataFrame, dict[str, str]]:
    if metric is None:
        primary = primary_metrics(scores)
        wanted = pd.DataFrame({"task": list(primary), "metric": list(primary.values())})
        return scores.merge(wanted, on=["task", "metric"], how="inner"), primary
    chosen = scores[scores["metric"] == metric]
    return chosen, {str(task): metric for task in chosen["task"].unique()}


def build_leaderboard(
    scores: pd.DataFrame,
    *,
    metric: str | None = None,
    rows: str = "runs",
    filters: LeaderboardFilters | None = None,
    rank_by: str | None = None,
    confidence: float = 0.95,
) -> Leaderboard:
    """The table for `metric` (None: each task's primary metric), one row per run or per model.

    In "models" mode a model's row holds, per task, its newest run's score. `rank_by` is a task or
    `average` or `mean rank` (the default: the average when there is one, else mean rank); rows
    are sorted by it, and ranked by it: in rank groups for intervals, by plain order for mean rank.
    """
    if rows not in ("runs", "models"):
        raise ValueError(f"rows must be 'runs' or 'models', got {rows!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    chosen, metrics = _pick_metric(filter_scores(scores, filters or LeaderboardFilters()), metric)
    identity_columns = RUN_COLUMNS if rows == "runs" else MODEL_COLUMNS
    if chosen.empty:
        return Leaderboard(table=pd.DataFrame(columns=list(identity_columns)), tasks=())

    if rows == "runs":
        # A run stores each task × metric once; keep the first row should a writer ever repeat one.
        chosen = chosen.drop_duplicates(["run_id", "task"])
        key = "run_id"
        identity = chosen.drop_duplicates("run_id")[list(RUN_COLUMNS)]
    else:
        chosen, identity = _latest_per_model(chosen)
        key = "model"
    chosen = chosen.assign(stderr=_stderr(chosen, z))
    tasks = tuple(sorted(str(task) for task in chosen["task"].unique()))
    firsts = chosen.drop_duplicates("task")
    pairs = zip(firsts["task"], firsts["higher_is_better"], strict=True)
    direction = {str(task): bool(higher) for task, higher in pairs}

    # Columns are gathered in a dict and joined once: inserting ~60 columns one by one into a
    # DataFrame costs more than everything else here.
    wide = chosen.pivot(index=key, columns="task", values=["value", "ci_low", "ci_high", "stderr"])
    identity = identity.set_index(key, drop=False)
    wide = wide.reindex(identity.index).astype(float)
    parts = {
        part: cast(pd.DataFrame, wide[part]).reindex(columns=list(tasks))
        for part in ("value", "ci_low", "ci_high", "stderr")
    }
    values = parts["value"]
    columns: dict[str, pd.Series] = {}
    for task in tasks:
        columns[task] = values[task]
        columns[f"{task} ci_low"] = parts["ci_low"][task]
        columns[f"{task} ci_high"] = parts["ci_high"][task]
    shown_metrics = {task: metrics[task] for task in tasks}
    uniform = len(set(shown_metrics.values())) == 1 and len({direction[t] for t in tasks}) == 1
    if uniform:
        # The mean over tasks, only for rows that have every task; tasks use disjoint documents,
        # so their errors are independent and the variance of the mean is the sum over k².
        stderr = parts["stderr"]
        average = values.mean(axis=1, skipna=False)
        spread = z * np.sqrt((stderr**2).sum(axis=1, skipna=False)) / len(tasks)
        columns[AVERAGE] = average
        columns[f"{AVERAGE} ci_low"] = average - spread
        columns[f"{AVERAGE} ci_high"] = average + spread
        direction[AVERAGE] = direction[tasks[0]]
    ranks = pd.DataFrame(
        {task: values[task].rank(ascending=not direction[task], method="min") for task in tasks}
    )
    columns[MEAN_RANK] = ranks.mean(axis=1)
    columns[TASK_COUNT] = values.notna().sum(axis=1)
    table = pd.concat([identity, pd.DataFrame(columns, index=identity.index)], axis=1)

    choice = rank_by if rank_by in rank_choices(tasks, uniform) else (AVERAGE if uniform else MEAN_RANK)
    if choice == MEAN_RANK:
        # Mean ranks carry no interval, so the rank is their plain order (ties share a rank).
        table[RANK] = table[MEAN_RANK].rank(method="min").astype("Int64")
        direction[MEAN_RANK] = False
    else:
        table[RANK] = rank_groups(
            table[choice], table[f"{choice} ci_low"], table[f"{choice} ci_high"], direction[choice]
        )
    secondary = TASK_COUNT if choice == MEAN_RANK else MEAN_RANK
    table = table.sort_values(
        [choice, secondary],
        ascending=[not direction[choice], choice != MEAN_RANK],
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)
    ordered = [RANK, *identity_columns, *(c for c in table.columns if c not in (RANK, *identity_columns))]
    return Leaderboard(
        table=table[ordered],
        tasks=tasks,
        metrics=shown_metrics,
        higher_is_better=direction,
        rank_by=choice,
        identity_columns=identity_columns,
    )


def display_table(
    board: Leaderboard, *, show_intervals: bool = True, confidence: float = 0.95
) -> pd.DataFrame:
    """The table as shown: numbers stay numbers (so columns sort), intervals become text columns.

    What the rows are ranked by comes first, after the names; per-task columns follow, and the
    run's time and id close the row.
    """
    table = board.table
    label = f"{round(confidence * 100)}% CI"
    leading = [column for column in board.identity_columns if column not in ("created_at", "run_id")]
    trailing = [column for column in board.identity_columns if column in ("created_at", "run_id")]
    columns: dict[str, pd.Series] = {column: table[column] for column in (RANK, *leading)}

    def add(column: str) -> None:
        columns[column] = table[column]
        if show_intervals:
            pairs = zip(table[f"{column} ci_low"], table[f"{column} ci_high"], strict=True)
            columns[f"{column} {label}"] = pd.Series(
                [interval_text(low, high) for low, high in pairs], index=table.index
            )

    if board.has_average:
        add(AVERAGE)
    columns[MEAN_RANK] = table[MEAN_RANK]
    columns[TASK_COUNT] = table[TASK_COUNT]
    for task in board.tasks:
        add(task)
    for column in trailing:
        columns[column] = table[column]
    return pd.DataFrame(columns)


def interval_text(low: float | None, high: float | None, digits: int = 3) -> str:
    """`[0.412, 0.533]`, or empty when there is no interval."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"
