"""Compare page: two runs side by side, per-task differences with intervals, then disagreements.

Each difference is marked better or worse by the metric's direction (the metric registry's), and the
table downloads as the Markdown report `harness gate --markdown` writes. Store strings reach the page
as grid cells, selectbox options, `st.text` or through `plain`, never as live Markdown.
"""

from __future__ import annotations

import streamlit as st

from harness.leaderboard.diff import VERDICT_MARKS, differences_markdown, directions, disagreements, verdicts
from harness.leaderboard.ranking import direction_arrow
from harness.leaderboard.sample_metrics import metric_names, signature_of
from harness.leaderboard.ui import cached_differences, cached_samples, pick_run, plain, store_data
from harness.store import StoreData

_SHOWN_ROWS = 500


def _differences(data: StoreData, baseline: str, candidate: str) -> None:
    result = cached_differences(data, baseline, candidate)
    if result.note:
        st.info(plain(result.note))
    st.caption(
        f"Difference = candidate − baseline; interval: {result.method}. ✅ candidate better, ❌ worse "
        "(the whole interval on that side, the metric's direction ↑/↓ folded in), ➖ no clear difference."
    )
    table = result.table
    if table.empty:
        st.info("The two runs have no task and metric in common.")
        return
    verdict = verdicts(table)
    shown = table.assign(
        mark=verdict.map(VERDICT_MARKS),
        better=directions(table).map(direction_arrow),
        verdict=verdict,
    )
    leading = ["mark", "task", "metric", "better"]
    shown = shown[[*leading, *(c for c in shown.columns if c not in (*leading, "higher_is_better"))]]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        placeholder="",
        column_config={
            "mark": st.column_config.TextColumn("", width=40),
            "better": st.column_config.TextColumn(
                "better", width=60, help="↑ higher is better, ↓ lower is better (the metric registry's)"
            ),
            **{
                column: st.column_config.NumberColumn(column, format="%.4f")
                for column in ("baseline", "candidate", "difference", "ci_low", "ci_high", "p_value")
            },
        },
    )
    report = differences_markdown(result, baseline, candidate)
    st.download_button(
        "Download Markdown report",
        report.encode("utf-8"),
        file_name=f"compare-{candidate}-vs-{baseline}.md",
        mime="text/markdown",
        key="cmp_markdown",
        help="The table as `harness gate --markdown` writes its report, for a pull request or a notebook",
    )


def _disagreements(data: StoreData, baseline: str, candidate: str) -> None:
    st.subheader("Where they disagree")
    shared_tasks = sorted(
        set(data.scores.loc[data.scores["run_id"] == baseline, "task"])
        & set(data.scores.loc[data.scores["run_id"] == candidate, "task"])
    )
    if not shared_tasks:
        st.info("The runs share no task.")
        return
    left, right = st.columns(2)
    task = str(left.selectbox("Task", shared_tasks, key="cmp_task"))
    base_samples = cached_samples(data, baseline, task)
    cand_samples = cached_samples(data, candidate, task)
    if base_samples is None or cand_samples is None:
        return
    names = metric_names(base_samples["statistics"])
    if not names:
        st.info("These samples carry no per-document metric statistics.")
        return
    metric = str(right.selectbox("Metric", names, key="cmp_metric"))
    only = st.checkbox("Only documents where they differ", value=True, key="cmp_only")
    signature = signature_of(data.scores, baseline, task, metric)
    table = disagreements(base_samples, cand_samples, metric, only_differing=only, signature=signature)
    st.caption(f"{len(table)} shared documents{' that differ' if only else ''}; largest difference first.")
    if table.empty:
        return
    st.dataframe(table.head(_SHOWN_ROWS), hide_index=True, width="stretch")
    doc_id = st.selectbox("Document", table["doc_id"].head(_SHOWN_ROWS).tolist(), key="cmp_doc")
    row = table.loc[table["doc_id"] == doc_id].iloc[0]
    st.markdown("**Prompt**")
    st.text(str(row["prompt"]))
    columns = st.columns(3)
    columns[0].markdown(f"**Baseline** ({row['baseline_value']:.4g})")
    columns[0].text(str(row["baseline_output"]))
    columns[1].markdown(f"**Candidate** ({row['candidate_value']:.4g})")
    columns[1].text(str(row["candidate_output"]))
    columns[2].markdown("**Target**")
    columns[2].text(str(row["target"]))


def main() -> None:
    st.title("Compare")
    data = store_data()
    if data is None:
        return
    if len(data.runs) < 2:
        st.info("Comparing needs two completed runs; this store has one.")
        return
    left, right = st.columns(2)
    with left:
        baseline = pick_run(data, "Baseline", key="cmp_baseline", default=1)
    with right:
        candidate = pick_run(data, "Candidate", key="cmp_candidate", default=0)
    if baseline is None or candidate is None:
        return
    if baseline == candidate:
        st.info("Pick two different runs.")
        return
    st.subheader("Per-task differences")
    _differences(data, baseline, candidate)
    _disagreements(data, baseline, candidate)


if __name__ == "__main__":
    main()
