"""Fairness page: a metric per group of documents, with intervals and the parity gaps."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st

from harness.leaderboard.groups import group_report, stored_fairness_scores
from harness.leaderboard.sample_metrics import metric_names, signature_of
from harness.leaderboard.ui import cached_counts, cached_samples, pick_run, store_data


def _chart(table: pd.DataFrame, metric: str) -> alt.LayerChart:
    base = alt.Chart(table).encode(y=alt.Y("group:N", sort=None, title="group"))
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X("ci_low:Q", title=metric), x2="ci_high:Q")
    points = base.mark_point(filled=True, size=80).encode(
        x=alt.X("value:Q", scale=alt.Scale(zero=False)), tooltip=["group", "n", "value", "ci_low", "ci_high"]
    )
    return bars + points


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"


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
    counts = cached_counts(data, run_id)
    if counts is None:
        return
    grouped = counts.loc[counts["groups"] > 0, "task"].astype(str).tolist()
    if not grouped:
        st.info(
            f"No sample of run {run_id} carries a group. Set `group_field` in a task's YAML to the "
            "document field to break results down by."
        )
        return
    task = str(middle.selectbox("Task", grouped, key="fair_task"))
    samples = cached_samples(data, run_id, task)
    if samples is None:
        return
    names = metric_names(samples["statistics"])
    if not names:
        st.info("These samples carry no per-document metric statistics.")
        return
    metric = str(right.selectbox("Metric", names, key="fair_metric"))
    stored = data.scores.loc[(data.scores["run_id"] == run_id) & (data.scores["metric"] == metric)]
    higher = bool(stored["higher_is_better"].iloc[0]) if not stored.empty else True
    signature = signature_of(data.scores, run_id, task, metric)
    report = group_report(samples, metric, higher_is_better=higher, signature=signature)
    if report.table.empty:
        st.info(f"No grouped document of {task} has values of {metric}.")
        return
    if len(report.table) < 2:
        st.info(f"Only one group of {task} has values of {metric}; gaps and ratios need two.")
    first, second, third = st.columns(3)
    first.metric("Gap (max − min)", _number(report.gap))
    second.metric("Ratio (min / max)", _number(report.ratio))
    third.metric("Best / worst group", f"{report.best_group or 'n/a'} / {report.worst_group or 'n/a'}")
    st.altair_chart(_chart(report.table, metric), width="stretch")
    st.dataframe(report.table, hide_index=True, width="stretch")
    note = f" {report.ungrouped} documents without a group are left out." if report.ungrouped else ""
    st.caption(
        f"{'Higher' if higher else 'Lower'} is better; groups are sorted best first. 95% intervals: "
        f"{report.method}, computed per group as the stored scores are.{note}"
    )
    stored = stored_fairness_scores(data.scores, run_id, task)
    if not stored.empty:
        st.subheader("Stored fairness scores")
        st.caption("Computed when the run was evaluated, for every metric of the task.")
        st.dataframe(stored, hide_index=True, width="stretch")


if __name__ == "__main__":
    main()
