"""The leaderboard table: runs (or models) × tasks for one metric, with intervals, ranks and filters.

Rank groups follow the rule popularised by Chatbot Arena: a row's rank is one plus the number of
rows whose interval lies entirely on the better side of its own. Rows whose intervals overlap can
share a rank, and no pair is separated unless the data separates them.

A task group (lm-eval's `group:`, see `task_groups`) is one column, its aggregate, and counts as one
task everywhere: in the average, the mean rank and the task count. Its members' values are in the table
too, for the drill-down (`member_table`), but take no part in ranking.

Rows are ranked only against rows that cover the same tasks. Rows with the same set of task values form
a coverage tier; the average, the mean rank and the rank are computed inside each tier, over its tasks
only, and tiers are ordered by how many tasks they cover. A run that scored one task (`harness score`,
`--tasks one`) therefore sits in its own tier below the full runs and is never ranked above them.
Ranking by one task is the exception: every row with a value for it is ranked on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from statistics import NormalDist
from typing import cast

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.leaderboard.task_groups import TaskGroups
from harness.metric_names import DEFAULT_FILTER, split_metric_name
from harness.metrics import get_metric

__all__ = [
    "AVERAGE",
    "MEAN_RANK",
    "RANK",
    "TASK_COUNT",
    "TIER",
    "Leaderboard",
    "LeaderboardFilters",
    "build_leaderboard",
    "column_label",
    "comparable_rows",
    "direction_arrow",
    "display_table",
    "filter_scores",
    "group_choices",
    "interval_text",
    "interval_texts",
    "member_table",
    "metric_choices",
    "metric_higher_is_better",
    "primary_metrics",
    "rank_choices",
    "rank_groups",
]

AVERAGE = "average"
MEAN_RANK = "mean rank"
RANK = "rank"
TASK_COUNT = "tasks"  # how many of the shown tasks the row has values for: its coverage
TIER = "tier"  # 1 for the rows covering the most tasks; rows are ranked within their tier only
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
    """`table` has identity columns, then per task `<task>`, `<task> ci_low`, `<task> ci_high`
    (the ranked `tasks` first, then the members of groups, which only the drill-down shows),
    then `average` (+ its interval, only when every task shows the same metric), `mean rank`,
    `tasks` (how many of `tasks` the row has values for) and `rank` (rank group by `rank_by`)."""

    table: pd.DataFrame
    tasks: tuple[str, ...]  # the columns shown and ranked: a group is one of them, its members are not
    metrics: Mapping[str, str] = field(default_factory=dict)  # task (or member) -> metric shown for it
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)  # by task, and by "average"
    rank_by: str | None = None
    identity_columns: tuple[str, ...] = RUN_COLUMNS
    # Group -> the columns of its drill-down (sub-groups, then tasks), for each group with a column.
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def has_average(self) -> bool:
        return AVERAGE in self.table.columns


def metric_choices(scores: pd.DataFrame, groups: TaskGroups | None = None) -> list[str]:
    """Metric names, the one covering the most tasks first; a group and its members count as one task."""
    if scores.empty:
        return []
    tasks = scores["task"].astype(str)
    if groups:
        tasks = tasks.map({task: groups.outermost(task) for task in tasks.unique()})
    coverage = tasks.groupby(scores["metric"]).nunique()
    return sorted(coverage.index, key=lambda name: (-int(coverage[name]), str(name)))


def primary_metrics(scores: pd.DataFrame) -> dict[str, str]:
    """Each task's first metric in stored order, i.e. the first of its `metric_list`."""
    if scores.empty:
        return {}
    # The store's reader keeps each part's rows in the order they were written, so without an explicit
    # row number the frame's own order is the stored order.
    ordered = (
        scores.sort_values("file_row_number", kind="stable")
        if "file_row_number" in scores.columns
        else scores
    )
    first = ordered.drop_duplicates("task")
    return dict(zip(first["task"].astype(str), first["metric"].astype(str), strict=True))


def filter_scores(scores: pd.DataFrame, filters: LeaderboardFilters) -> pd.DataFrame:
    if filters == LeaderboardFilters():
        return scores  # copying every row (its string columns especially) is the cost of "no filter"
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
        # A mask keeps the rows in place: cheaper than an inner merge over every score row.
        keep = scores["task"].map(primary).to_numpy(dtype=object) == scores["metric"].to_numpy(dtype=object)
        return scores[keep], primary
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
    groups: TaskGroups | None = None,
) -> Leaderboard:
    """The table for `metric` (None: each task's primary metric), one row per run or per model.

    In "models" mode a model's row holds, per task, its newest run's score. `rank_by` is a task or
    `average` or `mean rank` (the default: the average when there is one, else mean rank); rows
    are sorted by it, and ranked by it: in rank groups for intervals, by plain order for mean rank.
    With `groups`, a group that has a value is one column and its members are left out of ranking
    (a task filter naming a group keeps its members, for the drill-down).
    """
    if rows not in ("runs", "models"):
        raise ValueError(f"rows must be 'runs' or 'models', got {rows!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    groups = groups or TaskGroups()
    filters = filters or LeaderboardFilters()
    if groups and filters.tasks:
        filters = replace(filters, tasks=groups.with_members(filters.tasks))
    chosen, metrics = _pick_metric(filter_scores(scores, filters), metric)
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
    present = {str(task) for task in chosen["task"].unique()}
    tasks = groups.columns(present)  # without groups: every task, sorted
    members = {
        group: found
        for group in sorted(present)
        if groups.is_group(group) and (found := groups.members(group, present))
    }
    hidden = tuple(sorted(present - set(tasks)))
    firsts = chosen.drop_duplicates("task")
    pairs = zip(firsts["task"], firsts["higher_is_better"], strict=True)
    direction = {
        str(task): metric_higher_is_better(metrics[str(task)], bool(higher)) for task, higher in pairs
    }

    # Columns are gathered in a dict and joined once: inserting ~60 columns one by one into a
    # DataFrame costs more than everything else here.
    wide = chosen.pivot(index=key, columns="task", values=["value", "ci_low", "ci_high", "stderr"])
    identity = identity.set_index(key, drop=False)
    wide = wide.reindex(identity.index).astype(float)
    parts = {
        part: cast(pd.DataFrame, wide[part]).reindex(columns=[*tasks, *hidden])
        for part in ("value", "ci_low", "ci_high", "stderr")
    }
    columns: dict[str, pd.Series] = {}
    for task in (*tasks, *hidden):
        columns[task] = parts["value"][task]
        columns[f"{task} ci_low"] = parts["ci_low"][task]
        columns[f"{task} ci_high"] = parts["ci_high"][task]
    # Everything below ranks the shown columns only: a group counts once, its members not at all.
    parts = {part: frame[list(tasks)] for part, frame in parts.items()}
    values = parts["value"]
    shown_metrics = {task: metrics[task] for task in (*tasks, *hidden)}
    ranked_metrics = {shown_metrics[task] for task in tasks}
    uniform = len(ranked_metrics) == 1 and len({direction[t] for t in tasks}) == 1
    tiers = _coverage_tiers(values)
    columns[TIER] = tiers
    summary = _tier_summaries(values, parts["stderr"], tiers, direction, z, uniform)
    columns.update(summary)
    if uniform:
        direction[AVERAGE] = direction[tasks[0]]
    columns[TASK_COUNT] = values.notna().sum(axis=1)
    table = pd.concat([identity, pd.DataFrame(columns, index=identity.index)], axis=1)

    choice = rank_by if rank_by in rank_choices(tasks, uniform) else (AVERAGE if uniform else MEAN_RANK)
    direction[MEAN_RANK] = False
    if choice in tasks:
        # One task: every row with a value for it is comparable on it, whatever else it covers.
        table[RANK] = rank_groups(
            table[choice], table[f"{choice} ci_low"], table[f"{choice} ci_high"], direction[choice]
        )
        keys, ascending = [choice, MEAN_RANK], [not direction[choice], True]
    else:
        table[RANK] = _ranks_within_tiers(table, choice, direction[choice])
        secondary = TASK_COUNT if choice == MEAN_RANK else MEAN_RANK
        keys = [TIER, choice, secondary]
        ascending = [True, not direction[choice], choice != MEAN_RANK]
    table = table.sort_values(keys, ascending=ascending, na_position="last", kind="stable").reset_index(
        drop=True
    )
    ordered = [RANK, *identity_columns, *(c for c in table.columns if c not in (RANK, *identity_columns))]
    return Leaderboard(
        table=table[ordered],
        tasks=tasks,
        metrics=shown_metrics,
        higher_is_better=direction,
        rank_by=choice,
        identity_columns=identity_columns,
        members=members,
    )


def metric_higher_is_better(metric: str, stored: bool) -> bool:
    """The direction the metric registry gives `metric` (filters aside); `stored` for names it does
    not know (per-group and fairness rows, metrics from plugins not installed here)."""
    name = split_metric_name(metric)[0]
    try:
        return bool(get_metric(name).higher_is_better) if not name.startswith("evaluate:") else stored
    except HarnessError:
        return stored


def direction_arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _coverage_tiers(values: pd.DataFrame) -> pd.Series:
    """Tier per row: rows with the same set of task values share one; more tasks come first."""
    covered = values.notna().to_numpy()
    if covered.shape[0] == 0 or covered.shape[1] == 0:
        return pd.Series(1, index=values.index, dtype="int64")
    # The distinct coverage patterns are few; ordering them, not the rows, is what costs Python time.
    patterns, inverse = np.unique(covered, axis=0, return_inverse=True)
    keyed = [tuple(bool(flag) for flag in pattern) for pattern in patterns]
    order = sorted(range(len(keyed)), key=lambda i: (-sum(keyed[i]), [not flag for flag in keyed[i]]))
    number = np.empty(len(keyed), dtype="int64")
    number[order] = np.arange(1, len(keyed) + 1)
    return pd.Series(number[np.asarray(inverse).reshape(-1)], index=values.index, dtype="int64")


def _tier_summaries(
    values: pd.DataFrame,
    stderr: pd.DataFrame,
    tiers: pd.Series,
    direction: Mapping[str, bool],
    z: float,
    uniform: bool,
) -> dict[str, pd.Series]:
    """Mean rank (and, when every task shows one metric, the average with its interval) per row,
    each computed within the row's tier over the tasks that tier covers."""
    mean_rank = pd.Series(np.nan, index=values.index)
    average = pd.Series(np.nan, index=values.index)
    spread = pd.Series(np.nan, index=values.index)
    for _, rows in values.groupby(tiers, sort=False):
        shared = [task for task in rows.columns if rows[task].notna().all()]
        if not shared:
            continue
        ranks = pd.DataFrame(
            {task: rows[task].rank(ascending=not direction[task], method="min") for task in shared}
        )
        mean_rank[rows.index] = ranks.mean(axis=1)
        if uniform:
            # Tasks use disjoint documents, so their errors are independent: var(mean) = Σ se² / k².
            average[rows.index] = rows[shared].mean(axis=1)
            errors = stderr.loc[rows.index, shared]
            spread[rows.index] = z * np.sqrt((errors**2).sum(axis=1, skipna=False)) / len(shared)
    summary = {MEAN_RANK: mean_rank}
    if uniform:
        summary |= {
            AVERAGE: average,
            f"{AVERAGE} ci_low": average - spread,
            f"{AVERAGE} ci_high": average + spread,
        }
    return summary


def _ranks_within_tiers(table: pd.DataFrame, choice: str, higher_is_better: bool) -> pd.Series:
    """Rank groups by `choice` (interval overlap), or the order of mean ranks, inside each tier."""
    ranks = pd.Series(pd.NA, index=table.index, dtype="Int64")
    for _, rows in table.groupby(TIER, sort=False):
        if choice == MEAN_RANK:
            # Mean ranks carry no interval, so the rank is their plain order (ties share a rank).
            ranks[rows.index] = rows[MEAN_RANK].rank(method="min").astype("Int64")
        else:
            ranks[rows.index] = rank_groups(
                rows[choice], rows[f"{choice} ci_low"], rows[f"{choice} ci_high"], higher_is_better
            )
    return ranks


def comparable_rows(board: Leaderboard, *, include_partial: bool = False) -> Leaderboard:
    """The rows that cover every shown task (the default view); all tiers with `include_partial`,
    or when no row covers every task."""
    if include_partial or board.table.empty or TASK_COUNT not in board.table.columns:
        return board
    full = board.table[TASK_COUNT] == len(board.tasks)
    if not full.any():
        return board
    return replace(board, table=board.table[full].reset_index(drop=True))


def _shown(
    board: Leaderboard, middle: tuple[str, ...], *, summary: bool, show_intervals: bool, confidence: float
) -> pd.DataFrame:
    """Rank and names, the summary columns (average, mean rank, task count) when asked, `middle`
    with their intervals as text, then the run's time and id."""
    table = board.table
    label = f"{round(confidence * 100)}% CI"
    leading = [column for column in board.identity_columns if column not in ("created_at", "run_id")]
    trailing = [column for column in board.identity_columns if column in ("created_at", "run_id")]
    columns: dict[str, pd.Series] = {column: table[column] for column in (RANK, *leading)}

    def add(column: str) -> None:
        columns[column] = table[column]
        if show_intervals:
            columns[f"{column} {label}"] = interval_texts(
                table[f"{column} ci_low"], table[f"{column} ci_high"]
            )

    if summary:
        if TIER in table.columns and table[TIER].nunique() > 1:
            columns[TIER] = table[TIER]
        columns[TASK_COUNT] = table[TASK_COUNT]
        if board.has_average:
            add(AVERAGE)
        columns[MEAN_RANK] = table[MEAN_RANK]
    for task in middle:
        add(task)
    for column in trailing:
        columns[column] = table[column]
    return pd.DataFrame(columns)


def display_table(
    board: Leaderboard, *, show_intervals: bool = True, confidence: float = 0.95
) -> pd.DataFrame:
    """The table as shown: numbers stay numbers (so columns sort), intervals become text columns.

    After the names: the tier (when the table has several), the coverage, what the rows are ranked
    by; per-task columns follow, and the run's time and id close the row.
    """
    return _shown(board, board.tasks, summary=True, show_intervals=show_intervals, confidence=confidence)


def member_table(
    board: Leaderboard, group: str, *, show_intervals: bool = True, confidence: float = 0.95
) -> pd.DataFrame:
    """The drill-down of `group`: the group's column, then its members' (sub-groups, then tasks).

    Rows keep the leaderboard's order and rank; rows with no value for the group or any member are
    left out. The members are not ranked: the leaderboard counts the group as one task.
    """
    middle = (group, *board.members.get(group, ()))
    shown = _shown(board, middle, summary=False, show_intervals=show_intervals, confidence=confidence)
    return shown[board.table[list(middle)].notna().any(axis=1)].reset_index(drop=True)


def group_choices(board: Leaderboard) -> dict[str, str]:
    """Groups that can be drilled into, outer ones first, each with its path: `mmlu › mmlu_stem`."""
    choices: dict[str, str] = {}

    def visit(column: str, path: str) -> None:
        if column in board.members and column not in choices:
            choices[column] = path
            for member in board.members[column]:
                visit(member, f"{path} › {member}")

    for task in board.tasks:
        visit(task, task)
    return choices


def column_label(task: str, metric: str, higher_is_better: bool | None = None) -> str:
    """A task's column header: the task, the filter of a filtered metric (`gsm8k (strict-match)`), and
    with a direction the metric and its arrow: `gsm8k (strict-match) · exact_match ↑`."""
    name, filter_name = split_metric_name(metric)
    label = task if filter_name == DEFAULT_FILTER else f"{task} ({filter_name})"
    return label if higher_is_better is None else f"{label} · {name} {direction_arrow(higher_is_better)}"


def interval_texts(low: pd.Series, high: pd.Series, digits: int = 3) -> pd.Series:
    """`interval_text` of each row of two columns, with one pass over plain floats."""
    lows = pd.to_numeric(low, errors="coerce").astype(float).tolist()
    highs = pd.to_numeric(high, errors="coerce").astype(float).tolist()
    texts = [
        "" if math.isnan(a) or math.isnan(b) else f"[{a:.{digits}f}, {b:.{digits}f}]"
        for a, b in zip(lows, highs, strict=True)
    ]
    return pd.Series(texts, index=low.index)


def interval_text(low: float | None, high: float | None, digits: int = 3) -> str:
    """`[0.412, 0.533]`, or empty when there is no interval."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"
