"""A metric against training step, one line per experiment, from the stored scores."""

from __future__ import annotations

import pandas as pd

__all__ = ["NO_EXPERIMENT", "trend_frame"]

NO_EXPERIMENT = "(no experiment)"
TREND_COLUMNS = ["experiment", "step", "value", "ci_low", "ci_high", "model", "run_id", "created_at"]


def trend_frame(
    scores: pd.DataFrame, task: str, metric: str, experiments: tuple[str, ...] = ()
) -> pd.DataFrame:
    """One row per experiment × step, sorted by step; runs without a step cannot be placed.

    When an experiment has several runs at one step (a re-run), the newest one is shown, the same
    choice a reader of the leaderboard would make.
    """
    rows = scores[(scores["task"] == task) & (scores["metric"] == metric) & scores["step"].notna()]
    rows = rows.assign(experiment=rows["experiment"].fillna(NO_EXPERIMENT).astype(str))
    if experiments:
        rows = rows[rows["experiment"].isin(experiments)]
    rows = rows.sort_values(["created_at", "run_id"], kind="stable")
    rows = rows.drop_duplicates(["experiment", "step"], keep="last")
    frame = rows[TREND_COLUMNS].sort_values(["experiment", "step"], ignore_index=True)
    return frame.astype({"step": "int64", "value": float, "ci_low": float, "ci_high": float})
