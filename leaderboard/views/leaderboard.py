"""Leaderboard page: runs or models × tasks for one metric, with intervals, rank groups and filters.

A task group is one column (its aggregate); its members are shown on demand in a second table below
("Tasks of a group"), so the main table's columns are exactly the ones ranked. By default only rows
that cover every shown task are listed; the others are one toggle away, ranked in their own coverage
tiers (see `ranking`). Three views of the same rows: the table (sortable), a heat map that fits any
number of tasks in the page width, and a chart of one column with its intervals.

Store strings (model, experiment, task names) reach the page only through the data grid, selectbox
labels, the escaped heat map, chart data, or `plain` in captions: never as live Markdown or HTML.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from harness.leaderboard.heatmap import MAX_ROWS, heatmap_html
from harness.leaderboard.ranking import (
    AVERAGE,
    MEAN_RANK,
    RANK,
    TASK_COUNT,
    TIER,
    Leaderboard,
    LeaderboardFilters,
    column_label,
    comparable_rows,
    direction_arrow,
    group_choices,
    member_table,
    rank_choices,
)
from harness.leaderboard.score_chart import MAX_ROWS as CHART_ROWS
from harness.leaderboard.score_chart import score_chart_spec
from harness.leaderboard.task_groups import TaskGroups
from harness.leaderboard.ui import (
    cached_display_table,
    cached_leaderboard,
    cached_metric_choices,
    cached_task_groups,
    plain,
    store_data,
)
from harness.store import StoreData, part_entries

PRIMARY = "primary metric of each task"
INTERVAL = "95% CI"  # the suffix of `display_table`'s interval columns at its default confidence
VIEWS = ("table", "heat map", "chart")
# Past this many task columns the grid no longer fits a 1400 px window: the heat map is the default
# view and intervals start hidden in the table (the heat map and the chart still show them).
WIDE_TABLE_TASKS = 6


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
    columns: list[str],
    tasks: tuple[str, ...],
    board: Leaderboard,
    groups: TaskGroups,
    *,
    narrow: bool = False,
) -> dict[str, Any]:
    """Headers that name each task's metric and its direction (↑ higher is better, ↓ lower)."""
    metrics = dict(board.metrics)
    config: dict[str, Any] = {
        RANK: st.column_config.NumberColumn(
            RANK,
            help="Rank group within the tier: 1 + rows covering the same tasks whose interval is better",
        ),
        MEAN_RANK: st.column_config.NumberColumn(
            f"{MEAN_RANK} ↓", format="%.2f", help="Mean of per-task ranks among rows covering the same tasks"
        ),
        TASK_COUNT: st.column_config.NumberColumn(
            "coverage",
            format=f"%d/{len(board.tasks)}",
            help="How many of the shown tasks the row has values for",
        ),
        TIER: st.column_config.NumberColumn(
            TIER, help="Rows covering the same tasks form a tier and are ranked only against each other"
        ),
        "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    }
    for task in tasks:
        higher = board.higher_is_better.get(task, True)
        label = column_label(task, metrics[task], higher)
        described = f"{task}: metric {metrics[task]}, {'higher' if higher else 'lower'} is better"
        if groups.is_group(task):
            described += f"; the aggregate of a group of {len(groups.leaves[task])} tasks"
        config[task] = st.column_config.NumberColumn(
            label, format="%.4f", help=described, width="small" if narrow else None
        )
        if f"{task} {INTERVAL}" in columns:
            config[f"{task} {INTERVAL}"] = st.column_config.TextColumn(f"{label} {INTERVAL}")
    if AVERAGE in columns:
        arrow = direction_arrow(board.higher_is_better.get(AVERAGE, True))
        config[AVERAGE] = st.column_config.NumberColumn(f"{AVERAGE} {arrow}", format="%.4f")
    return config


def _explain(board: Leaderboard, count: int, rows: str, hidden: int) -> str:
    better = "higher" if board.higher_is_better.get(str(board.rank_by), True) else "lower"
    if board.rank_by == MEAN_RANK:
        rule = "The rank is the order of mean ranks (the mean of the row's per-task ranks)."
    else:
        rule = "Rows whose 95% intervals overlap can share a rank: rank = 1 + rows clearly better."
    if board.rank_by in board.tasks:
        coverage = " Ranked by one task: every row with a value for it is ranked on it."
    else:
        coverage = " Rows are ranked only against rows that cover the same tasks (a coverage tier)."
    if hidden:
        coverage += f" {hidden} {rows} covering fewer tasks are hidden."
    average = (
        " The average is over the tier's tasks; its interval treats tasks as independent."
        if board.has_average
        else " No average: the tasks show different metrics."
    )
    ranked = f"ranked by {plain(board.rank_by)} ({better} is better)"
    grouped = [plain(task) for task in board.tasks if task in board.members]
    counted = ""
    if len(grouped) == 1:
        counted = f" ({grouped[0]} is a group, counted as one task)"
    elif grouped:
        counted = f" ({', '.join(grouped)} are groups, each counted as one task)"
    return f"{count} {rows} × {len(board.tasks)} tasks{counted}, {ranked}. {rule}{coverage}{average}"


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
        placeholder="",
        column_config=_column_config(list(table.columns), columns, board, groups),
    )
    subgroups = [plain(member) for member in board.members[group] if groups.is_group(member)]
    inner = f" (sub-groups: {', '.join(subgroups)}; choose one to see its tasks)" if subgroups else ""
    st.caption(
        f"{plain(choices[group])}: the group's aggregate, then its members{inner}, in the leaderboard's "
        f"order and rank. The members are not ranked: the leaderboard counts {plain(group)} as one task."
    )


def _human_by_run(root: str) -> pd.DataFrame | None:
    """The human ratings exported to the store, per run; None when there are none (most stores).

    `harness.leaderboard.human` (and the SciPy under `harness.ratings`) is imported only then: a cold
    page load of a store without ratings does not pay for it."""
    if not part_entries(root, "ratings"):
        return None
    from harness.leaderboard.human import cached_human_by_run

    return cached_human_by_run(root)


def _with_human(shown: pd.DataFrame, human: pd.DataFrame | None, *, show_intervals: bool) -> pd.DataFrame:
    if human is None:
        return shown
    from harness.leaderboard.human import with_human_columns

    return with_human_columns(shown, human, show_intervals=show_intervals)


def _human_config(columns: Any, human: pd.DataFrame | None) -> dict[str, Any]:
    if human is None:
        return {}
    from harness.leaderboard.human import human_column_config

    return human_column_config(columns)


def csv_bytes(board: Leaderboard, human: pd.DataFrame | None) -> bytes:
    """The rows shown, every column of the board (members and intervals too), then the human columns."""
    table = _with_human(board.table, human, show_intervals=True)
    return table.to_csv(index=False).encode("utf-8")


def _chart(board: Leaderboard) -> None:
    """Bars with intervals for one column: the ranked one by default."""
    choices = [*((AVERAGE,) if board.has_average else ()), *board.tasks]
    default = board.rank_by if board.rank_by in choices else choices[0]
    column = st.selectbox("Chart of", choices, index=choices.index(default), key="lb_chart_column")
    frame, spec = score_chart_spec(board, str(column))
    if frame.empty:
        st.info("No row has a value for this column.")
        return
    st.vega_lite_chart(frame, spec, width="stretch")
    if len(board.table) > CHART_ROWS:
        st.caption(f"The first {CHART_ROWS} rows of {len(board.table)}, in the leaderboard's order.")


def main() -> None:
    st.title("Leaderboard")
    data = store_data()
    if data is None:
        return
    groups = cached_task_groups(data)
    controls = st.columns([2, 1, 2, 2])
    metric_label = controls[0].selectbox("Metric", [PRIMARY, *cached_metric_choices(data)], key="lb_metric")
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
    many = len(board.tasks) > WIDE_TABLE_TASKS
    options_row = st.columns([2, 2, 3])
    # `?view=table|heatmap|chart` picks the first view (links, scripts); the default fits the width.
    asked = str(st.query_params.get("view", "")).replace("heatmap", "heat map")
    view = options_row[0].radio(
        "View",
        VIEWS,
        index=VIEWS.index(asked) if asked in VIEWS else (1 if many else 0),
        horizontal=True,
        key="lb_view",
        help="The same rows, three ways",
    )
    show_intervals = options_row[1].toggle(
        "Show 95% confidence intervals", value=not many, key="lb_intervals"
    )
    include_partial = options_row[2].toggle(
        "Include rows covering fewer tasks",
        value=False,
        key="lb_partial",
        help="Shown in their own coverage tiers, each ranked only against rows covering the same tasks",
    )
    visible = comparable_rows(board, include_partial=include_partial)
    hidden = len(board.table) - len(visible.table)
    human = _human_by_run(data.root)
    if view == "heat map":
        st.html(heatmap_html(visible))
        if len(visible.table) > MAX_ROWS:
            st.caption(
                f"The first {MAX_ROWS} rows; the table view and the CSV have all {len(visible.table)}."
            )
    elif view == "chart":
        _chart(visible)
    else:
        table = cached_display_table(
            data,
            board,
            metric=metric,
            rows=str(rows),
            filters=filters,
            include_partial=include_partial,
            show_intervals=show_intervals,
        )
        shown = _with_human(table, human, show_intervals=show_intervals)
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            placeholder="",
            column_config={
                **_column_config(list(shown.columns), visible.tasks, visible, groups, narrow=many),
                **_human_config(shown.columns, human),
            },
        )
    st.caption(_explain(visible, len(visible.table), str(rows), hidden))
    st.download_button(
        "Download CSV",
        # Made only when clicked: the page script does not pay for it on every rerun.
        lambda: csv_bytes(visible, human),
        file_name="leaderboard.csv",
        mime="text/csv",
        key="lb_download",
    )
    _drill_down(board, groups, show_intervals)


if __name__ == "__main__":
    main()
