"""Trends page: a metric against checkpoint step, one line per experiment, with interval bands.

Task, metric and experiment names reach the page as selectbox options, chart data, grid cells or
through `plain`: never as live Markdown.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from harness.leaderboard.ranking import direction_arrow, metric_higher_is_better
from harness.leaderboard.trends import trend_frame
from harness.leaderboard.ui import plain, store_data


def _chart(frame: pd.DataFrame, metric: str) -> alt.LayerChart:
    base = alt.Chart(frame).encode(
        x=alt.X("step:Q", title="step"),
        color=alt.Color("experiment:N", title="experiment"),
    )
    band = base.mark_area(opacity=0.18).encode(y=alt.Y("ci_low:Q", title=metric), y2="ci_high:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
        tooltip=["experiment", "step", "value", "ci_low", "ci_high", "model", "run_id"],
    )
    return (band + line).interactive()


def main() -> None:
    st.title("Trends")
    data = store_data()
    if data is None:
        return
    scores = data.scores
    left, middle, right = st.columns(3)
    task = left.selectbox("Task", sorted(scores["task"].astype(str).unique()), key="trend_task")
    metrics = sorted(scores.loc[scores["task"] == task, "metric"].astype(str).unique())
    metric = middle.selectbox("Metric", metrics, key="trend_metric")
    experiments = sorted(scores["experiment"].dropna().astype(str).unique())
    chosen = right.multiselect("Experiments", experiments, key="trend_experiments")
    frame = trend_frame(scores, str(task), str(metric), tuple(chosen))
    if frame.empty:
        st.info(
            f"No run with a step has a score for {plain(task)} / {plain(metric)}; "
            "a run gets one from --step or a checkpoint-N model path."
        )
        return
    stored = bool(
        scores.loc[(scores["task"] == task) & (scores["metric"] == metric), "higher_is_better"].iloc[0]
    )
    higher = metric_higher_is_better(str(metric), stored)
    st.altair_chart(_chart(frame, f"{metric} {direction_arrow(higher)}"), width="stretch")
    st.caption(
        f"{'Higher' if higher else 'Lower'} is better. Bands are the stored 95% intervals; at a step "
        "evaluated more than once the newest run is shown."
    )
    st.dataframe(frame, hide_index=True, width="stretch", placeholder="")


if __name__ == "__main__":
    main()
