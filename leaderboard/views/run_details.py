"""Run details page: what a run was, how it was made (provenance), its scores and sample counts."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from harness.leaderboard.ui import cached_counts, pick_run, plain, store_data
from harness.store import Provenance

_SCORE_COLUMNS = ["task", "task_version", "metric", "value", "stderr", "ci_low", "ci_high", "n", "signature"]


def main() -> None:
    st.title("Run details")
    data = store_data()
    if data is None:
        return
    run_id = pick_run(data, "Run", key="details_run")
    if run_id is None:
        return
    row = data.runs.loc[data.runs["run_id"] == run_id].iloc[0]
    summary = {
        "run_id": run_id,
        "created_at": str(row["created_at"]),
        "model": row["model"],
        "model_fingerprint": row["model_fingerprint"],
        "experiment": row["experiment"],
        "step": None if pd.isna(row["step"]) else int(row["step"]),
        "status": row["status"],
        "tasks": list(row["tasks"]),
        "tags": list(Provenance.from_json(str(row["provenance"])).tags),
    }
    st.dataframe(
        {"field": list(summary), "value": [str(value) for value in summary.values()]},
        hide_index=True,
        width="stretch",
    )
    st.subheader("Provenance")
    try:
        st.json(json.loads(str(row["provenance"])), expanded=2)
    except ValueError:
        st.warning("The stored provenance is not valid JSON; shown as stored.")
        st.text(str(row["provenance"]))
    st.subheader("Scores")
    scores = data.scores.loc[data.scores["run_id"] == run_id]
    if scores.empty:
        st.info(f"Run {plain(run_id)} has no stored scores.")
    else:
        st.dataframe(scores[_SCORE_COLUMNS], hide_index=True, width="stretch")
    st.subheader("Samples")
    counts = cached_counts(data, run_id)
    if counts is not None:
        st.dataframe(counts, hide_index=True, width="stretch")


if __name__ == "__main__":
    main()
