"""Leaderboard page: runs or models × tasks for one metric, with intervals, rank groups and filters.

A task group is one column (its aggregate); its members are shown on demand in a second table below
("Tasks of a group"), so the main table's columns are exactly the ones ranked.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from harness.leaderboard.human import cached_human_by_run, human_column_config, with_human_columns
from harness.leaderboard.ranking import (
    AVERAGE,
    MEAN_RANK,
    RANK,
    Leaderboard,
    LeaderboardFilters,
    column_label,
    display_table,
    group_choices,
    member_table,
    metric_choices,
    rank_choices,
)
from harness.leaderboard.task_groups import TaskGroups
from harness.leaderboard.ui import cached_leaderboard, cached_task_groups, store_data
from harness.store import StoreData

PRIMARY = "primary metric of each task"
INTERVAL = "95% CI"  # the suffix of `display_table`'s interval columns at its default confidence


def _filters(data: StoreData, groups: TaskGroups) -> LeaderboardFilters:
    runs = data.runs  # one row per run: cheaper than the scores for the choices offered here
    with st.expander("Filters", expanded=False):
        left, middle, right = st.columns(3)
        experiments = left.multiselect(
            "Experiments", sorted(runs["experiment"].dropna().astype(str).unique()), key="lb_experiments"
        )
        models = middle.multiselect("Models", sorted(runs["model"].astype(str).unique()), key="lb_models")
        tasks = right.multiselect(
            "Tasks",
            sorted(data.scores["task"].astype(str).unique()),
            format_func=lambda task: f"{task} (group)" if groups.is_group(task) else task,
            key="lb_tasks",
        )
        days = runs["created_at"].dt.date
        first, last = days.min(), days.max()
        chosen = st.date_input(
            "Created between", value=(first, last), min_value=first, max_value=last, key="lb_dates"
        )
    # While a range is being picked the widget holds one date; treat it as an open end.
    bounds = [
        value for value in (chosen if isinstance(chosen, tuple) else (chosen,)) if isinstance(value, date)
    ]
    return LeaderboardFilters(
        experiments=tuple(experiments),
        models=tuple(models),
        tasks=tuple(tasks),
        start=bounds[0] if bounds else None,
        end=bounds[1] if len(bounds) > 1 else None,
        search=str(st.session_state.get("lb_search", "")),
    )


def _column_config(
    columns: list[str], tasks: tuple[str, ...], metrics: dict[str, str], groups: TaskGroups
) -> dict[str, Any]:
    config: dict[str, Any] = {
        RANK: st.column_config.NumberColumn(
            RANK, help="Rank group: 1 + rows whose interval is entirely better"
        ),
        MEAN_RANK: st.column_config.NumberColumn(MEAN_RANK, format="%.2f", help="Mean of per-task ranks"),
        "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    }
    for task in tasks:
        label = column_label(task, metrics[task])
        described = f"metric: {metrics[task]}"
        if groups.is_group(task):
            described += f"; the aggregate of a group of {len(groups.leaves[task])} tasks"
        config[task] = st.column_config.NumberColumn(label, format="%.4f", help=described)
        if label != task and f"{task} {INTERVAL}" in columns:
            config[f"{task} {INTERVAL}"] = st.column_config.TextColumn(f"{label} {INTERVAL}")
    if AVERAGE in columns:
        config[AVERAGE] = st.column_config.NumberColumn(AVERAGE, format="%.4f")
    return config


def _explain(board: Leaderboard, count: int, rows: str) -> str:
    better = "higher" if board.higher_is_better.get(str(board.rank_by), True) else "lower"
    if board.rank_by == MEAN_RANK:
        rule = "The rank is the order of mean ranks (the mean of the row's per-task ranks)."
    else:
        rule = "Rows whose 95% intervals overlap can share a rank: rank = 1 + rows clearly better."
    average = (
        " The average needs every task; its interval treats tasks as independent."
        if board.has_average
        else " No average: the tasks show different metrics."
    )
    ranked = f"ranked by {board.rank_by} ({better} is better)"
    grouped = [task for task in board.tasks if task in board.members]
    counted = ""
    if len(grouped) == 1:
        counted = f" ({grouped[0]} is a group, counted as one task)"
    elif grouped:
        counted = f" ({', '.join(grouped)} are groups, each counted as one task)"
    return f"{count} {rows} × {len(board.tasks)} tasks{counted}, {ranked}. {rule}{average}"


def _drill_down(board: Leaderboard, groups: TaskGroups, show_intervals: bool) -> None:
    """A second table for one chosen group: its aggregate, then its sub-groups' and tasks' values."""
    choices = group_choices(board)
    if not choices:
        return
    group = st.selectbox(
        "Tasks of a group",
        list(choices),
        index=None,
        format_func=lambda name: choices.get(name, name),
        placeholder="Choose a group to show its tasks",
        help="The leaderboard ranks a group as one task; its tasks are listed here and not ranked",
        key="lb_group",
    )
    if group is None or group not in choices:
        return
    table = member_table(board, group, show_intervals=show_intervals)
    columns = (group, *board.members[group])
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config=_column_config(list(table.columns), columns, dict(board.metrics), groups),
    )
    subgroups = [member for member in board.members[group] if groups.is_group(member)]
    inner = f" (sub-groups: {', '.join(subgroups)}; choose one to see its tasks)" if subgroups else ""
    st.caption(
        f"{choices[group]}: the group's aggregate, then its members{inner}, in the leaderboard's order "
        f"and rank. The members are not ranked: the leaderboard counts {group} as one task."
    )


def main() -> None:
    st.title("Leaderboard")
    data = store_data()
    if data is None:
        return
    groups = cached_task_groups(data)
    controls = st.columns([2, 1, 2, 2])
    metric_label = controls[0].selectbox(
        "Metric", [PRIMARY, *metric_choices(data.scores, groups)], key="lb_metric"
    )
    rows = controls[1].radio("Rows", ["runs", "models"], horizontal=True, key="lb_rows")
    controls[3].text_input("Search", key="lb_search", placeholder="model, experiment or run id")
    filters = _filters(data, groups)
    metric = None if metric_label == PRIMARY else str(metric_label)
    board = cached_leaderboard(data, metric=metric, rows=str(rows), filters=filters)
    if board.table.empty:
        st.info("No scores match the chosen metric and filters.")
        return
    options = rank_choices(board.tasks, board.has_average)
    # One choice per metric: switching to a metric that has an average starts out ranked by it.
    rank_by = controls[2].selectbox("Rank and sort by", options, key=f"lb_rank_by:{metric_label}")
    if rank_by != board.rank_by:
        board = cached_leaderboard(data, metric=metric, rows=str(rows), filters=filters, rank_by=rank_by)
    show_intervals = st.toggle("Show 95% confidence intervals", value=True, key="lb_intervals")
    shown = display_table(board, show_intervals=show_intervals)
    shown = with_human_columns(shown, cached_human_by_run(data.root), show_intervals=show_intervals)
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            **_column_config(list(shown.columns), board.tasks, dict(board.metrics), groups),
            **human_column_config(shown.columns),
        },
    )
    st.caption(_explain(board, len(shown), str(rows)))
    table = board.table
    st.download_button(
        "Download CSV",
        # Made only when clicked: the page script does not pay for it on every rerun.
        lambda: table.to_csv(index=False).encode("utf-8"),
        file_name="leaderboard.csv",
        mime="text/csv",
        key="lb_download",
    )
    _drill_down(board, groups, show_intervals)


if __name__ == "__main__":
    main()
