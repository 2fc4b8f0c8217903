"""Fairness page: the fairness rows a run stored, per group, between groups and per intersection.

Everything shown here was computed once, when the run was made (`harness.fairness`): per-group values
with their intervals, the gaps between groups with bootstrap intervals and permutation p-values
(Holm-adjusted across groups), and intersections of group fields as a heat map. Data audits
(`harness audit`) are runs too and show their representation and label balance here.
"""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st

from harness.fairness.stored import StoredFairness, heat_map_cells, read_fairness_rows
from harness.leaderboard.ui import pick_run, plain, store_data


def _chart(table: pd.DataFrame, metric: str) -> alt.LayerChart:
    base = alt.Chart(table).encode(y=alt.Y("group:N", sort=None, title="group"))
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X("ci_low:Q", title=metric), x2="ci_high:Q")
    points = base.mark_point(filled=True, size=80).encode(
        x=alt.X("value:Q", scale=alt.Scale(zero=False)),
        tooltip=["group", "n", "value", "ci_low", "ci_high", "p_holm"],
    )
    return bars + points


def _heat_map(cells: pd.DataFrame, metric: str, rows: str, columns: str) -> alt.LayerChart:
    base = alt.Chart(cells).encode(x=alt.X("column:N", title=columns), y=alt.Y("row:N", title=rows))
    rects = base.mark_rect().encode(
        color=alt.Color("value:Q", title=metric, scale=alt.Scale(scheme="blues")),
        tooltip=["group", "value", "n", "p_holm"],
    )
    labels = base.mark_text(baseline="middle", color="black").encode(text=alt.Text("value:Q", format=".3g"))
    return rects + labels


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4g}"


def _p_text(value: float) -> str:
    return "" if value is None or math.isnan(value) else f" (p = {value:.3g})"


def _between(stored: StoredFairness, metric: str, design: str, statistic: str) -> pd.Series | None:
    rows = stored.between[
        (stored.between["metric"] == metric)
        & (stored.between["design"] == design)
        & (stored.between["statistic"] == statistic)
    ]
    return None if rows.empty else rows.iloc[0]


def main() -> None:
    st.title("Fairness")
    data = store_data()
    if data is None:
        return
    left, middle, right = st.columns([3, 2, 2])
    with left:
        run_id = pick_run(data, "Run", key="fair_run")
    if run_id is None:
        return
    run_scores = data.scores[data.scores["run_id"] == run_id]
    grouped = run_scores.loc[run_scores["metric"].astype(str).str.startswith("group/"), "task"]
    tasks = sorted(set(grouped.astype(str)))
    if not tasks:
        st.info(
            f"Run {plain(run_id)} stored no fairness rows. Set `group_field` in a task's YAML (one field "
            "or a list) to break results down by group, or audit a data file with `harness audit`."
        )
        return
    task = str(middle.selectbox("Task", tasks, key="fair_task"))
    stored = read_fairness_rows(run_scores[run_scores["task"] == task])
    metric = str(right.selectbox("Metric", stored.metrics(), key="fair_metric"))
    designs = stored.designs(metric)
    design = designs[0]
    if len(designs) > 1:
        design = str(st.selectbox("Groups of", designs, key="fair_design"))
    table = stored.groups[(stored.groups["metric"] == metric) & (stored.groups["design"] == design)]
    direction = _between(stored, metric, design, "worst_group")
    higher = bool(direction["higher_is_better"]) if direction is not None else True
    table = table.sort_values("value", ascending=not higher, kind="stable", ignore_index=True)
    difference = _between(stored, metric, design, "difference")
    ratio = _between(stored, metric, design, "ratio")
    first, second, third = st.columns(3)
    first.metric(
        "Gap (max − min)",
        _number(difference["value"]) if difference is not None else "n/a",
        help="Stored with the run; p from a permutation test of the group labels."
        + (_p_text(difference["p_value"]) if difference is not None else ""),
    )
    second.metric("Ratio (min / max)", _number(ratio["value"]) if ratio is not None else "n/a")
    best_worst = "n/a / n/a"
    if len(table) >= 2:
        best_worst = f"{table['group'].iloc[0]} / {table['group'].iloc[len(table) - 1]}"
    third.metric("Best / worst group", best_worst)
    if difference is not None and not math.isnan(difference["p_value"]):
        adjusted = difference["p_holm"]
        holm_text = "" if math.isnan(adjusted) else f", Holm-adjusted across designs {adjusted:.3g}"
        st.caption(
            f"Gap {_number(difference['value'])} (95% interval {_number(difference['ci_low'])} to "
            f"{_number(difference['ci_high'])}), permutation p = {difference['p_value']:.3g}{holm_text}."
        )
    shown = table[["group", "n", "value", "ci_low", "ci_high", "p_value", "p_holm", "small", "flag"]]
    st.altair_chart(_chart(shown, metric), width="stretch")
    st.dataframe(shown, hide_index=True, width="stretch")
    st.caption(
        f"{'Higher' if higher else 'Lower'} is better; best group first. p_value: this group against all "
        "others together (permutation test); p_holm: Holm-adjusted across this design's groups. Rows as "
        "stored when the run was made."
    )
    intersections = [name for name in designs if name.count("&") == 1]
    if intersections:
        st.subheader("Intersections")
        pair = intersections[0]
        if len(intersections) > 1:
            pair = str(st.selectbox("Intersection", intersections, key="fair_pair"))
        rows, columns = pair.split("&")
        cells = heat_map_cells(stored.groups, metric, pair)
        # Rows tall enough to read a label in each cell, however few the rows.
        height = max(160, 56 * int(cells["row"].nunique()) + 90)
        st.altair_chart(_heat_map(cells, metric, rows, columns), width="stretch", height=height)
        worst_rows = stored.between[
            (stored.between["metric"] == metric) & (stored.between["statistic"] == "worst_intersection")
        ]
        worst = None if worst_rows.empty else worst_rows.iloc[0]
        missing = "Cells too small to report are left out (blank), never merged."
        if worst is not None:
            st.caption(f"Worst intersection: {_number(worst['value'])} (n = {worst['n']}). {missing}")
        else:
            st.caption(missing)
    gaps = stored.between[stored.between["metric"] == metric]
    if not gaps.empty:
        st.subheader("Between groups")
        st.dataframe(gaps.drop(columns=["metric"]), hide_index=True, width="stretch")
    others = stored.between[stored.between["metric"] != metric]
    if not others.empty:
        with st.expander("Other fairness rows of this task"):
            st.dataframe(others, hide_index=True, width="stretch")


if __name__ == "__main__":
    main()
