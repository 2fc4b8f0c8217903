"""Samples page: one run's documents by task, filtered by correctness, metric value, group and text."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from harness.leaderboard.sample_metrics import metric_names, signature_of
from harness.leaderboard.samples_view import (
    CORRECTNESS,
    SampleFilters,
    filter_samples,
    is_binary,
    sample_table,
)
from harness.leaderboard.ui import cached_samples, pick_run, plain, store_data

_PAGE_SIZE = 200


def _filters(table: pd.DataFrame) -> SampleFilters:
    left, middle, right = st.columns(3)
    values = table["value"].dropna()
    correctness = "all"
    value_range: tuple[float, float] | None = None
    if is_binary(values):
        correctness = str(left.radio("Correctness", CORRECTNESS, horizontal=True, key="smp_correct"))
    elif not values.empty:
        low, high = float(values.min()), float(values.max())
        if math.isfinite(low) and math.isfinite(high) and high > low:
            picked = left.slider("Metric value", low, high, (low, high), key="smp_range")
            value_range = (float(picked[0]), float(picked[1]))
    groups = sorted(table["group"].unique())
    chosen_groups = middle.multiselect("Groups", groups, key="smp_groups") if len(groups) > 1 else []
    search = right.text_input("Search text", key="smp_search", placeholder="in prompt, target, output")
    return SampleFilters(
        correctness=correctness, value_range=value_range, search=search, groups=tuple(chosen_groups)
    )


def main() -> None:
    st.title("Samples")
    data = store_data()
    if data is None:
        return
    left, middle, right = st.columns([3, 2, 2])
    with left:
        run_id = pick_run(data, "Run", key="smp_run")
    if run_id is None:
        return
    tasks = sorted(data.scores.loc[data.scores["run_id"] == run_id, "task"].astype(str).unique())
    if not tasks:
        st.info(f"Run {plain(run_id)} has no scores, so no tasks to browse.")
        return
    task = str(middle.selectbox("Task", tasks, key="smp_task"))
    samples = cached_samples(data, run_id, task)
    if samples is None:
        return
    if samples.empty:
        st.info(f"Run {plain(run_id)} stored no samples for {plain(task)}.")
        return
    names = metric_names(samples["statistics"])
    metric = right.selectbox("Metric", names, key="smp_metric") if names else None
    signature = None if metric is None else signature_of(data.scores, run_id, task, str(metric))
    table = sample_table(samples, None if metric is None else str(metric), signature)
    shown = filter_samples(table, _filters(table))
    pages = max(1, math.ceil(len(shown) / _PAGE_SIZE))
    page = int(st.number_input("Page", 1, pages, 1, key="smp_page")) if pages > 1 else 1
    st.caption(f"{len(shown)} of {len(table)} documents match; page {page} of {pages}.")
    window = shown.iloc[(page - 1) * _PAGE_SIZE : page * _PAGE_SIZE]
    st.dataframe(
        window,
        hide_index=True,
        width="stretch",
        column_config={"value": st.column_config.NumberColumn(str(metric or "value"), format="%.4g")},
    )
    if window.empty:
        return
    doc_id = st.selectbox("Document", window["doc_id"].tolist(), key="smp_doc")
    row = window.loc[window["doc_id"] == doc_id].iloc[0]
    st.markdown(f"**Prompt** (group: {plain(row['group'])})")
    st.text(str(row["prompt"]))
    output, target = st.columns(2)
    output.markdown(f"**Output** ({plain(metric)}: {row['value']:.4g})")
    output.text(str(row["output"]))
    target.markdown("**Target**")
    target.text(str(row["target"]))


if __name__ == "__main__":
    main()
