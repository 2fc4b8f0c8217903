"""Per-group values of a metric from one run's samples, and the parity gaps between groups.

This reads the samples' `group` column (a task's `group_field`) directly; it stands in until the
fairness package provides its group metrics, and needs nothing from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.leaderboard.sample_metrics import subset_score
from harness.metrics.base import DERIVED_METRIC_PREFIXES

__all__ = ["GroupReport", "group_report", "stored_fairness_scores"]

# Prefixes of score rows that the fairness metrics store next to a task's ordinary scores.
STORED_PREFIXES = DERIVED_METRIC_PREFIXES


@dataclass(frozen=True)
class GroupReport:
    """`table`: group, n, value, ci_low, ci_high, one row per group, best first."""

    table: pd.DataFrame
    metric: str
    higher_is_better: bool
    gap: float  # largest value minus the smallest, in metric units (>= 0); NaN under two groups
    ratio: float  # smallest value over the largest (1 means parity); NaN under two groups or unless both > 0
    best_group: str | None
    worst_group: str | None
    ungrouped: int  # samples without a group, left out of every figure
    method: str  # how the intervals were made: "normal" or "bootstrap"


def group_report(
    samples: pd.DataFrame,
    metric: str,
    *,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    resamples: int = 1000,
    signature: str | None = None,
) -> GroupReport:
    """Each group's `metric` over its own documents, with an interval, plus max-min gap and min/max ratio."""
    grouped = samples[samples["group"].notna()]
    rows = []
    method = "none"
    for group, frame in grouped.groupby(grouped["group"].astype(str), sort=True):
        result = subset_score(
            frame["statistics"], metric, confidence=confidence, resamples=resamples, signature=signature
        )
        if result.n == 0:
            continue  # this group's documents lack the metric (another metric of the task)
        method = result.method
        rows.append(
            {
                "group": group,
                "n": result.n,
                "value": result.value,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
            }
        )
    table = pd.DataFrame(rows, columns=["group", "n", "value", "ci_low", "ci_high"])
    table = table.sort_values("value", ascending=not higher_is_better, kind="stable", ignore_index=True)
    values = table["value"].astype(float).dropna()
    if len(values) < 2:
        # A gap between groups needs two of them; 0 or 1 here would claim a parity never measured.
        gap = ratio = math.nan
        best = worst = None
    else:
        low, high = float(values.min()), float(values.max())
        gap = high - low
        ratio = low / high if low > 0 and high > 0 else math.nan
        best, worst = str(table["group"].iloc[0]), str(table["group"].iloc[len(values) - 1])
    return GroupReport(
        table=table,
        metric=metric,
        higher_is_better=higher_is_better,
        gap=gap,
        ratio=ratio,
        best_group=best,
        worst_group=worst,
        ungrouped=int(samples["group"].isna().sum()),
        method=method,
    )


def stored_fairness_scores(scores: pd.DataFrame, run_id: str, task: str) -> pd.DataFrame:
    """Per-group and parity rows the run stored for `task` (`group/...`, `fairness/...`), if any.

    These come from the fairness metrics at evaluation time; the page shows them next to the
    breakdown it computes from the samples.
    """
    rows = scores[(scores["run_id"] == run_id) & (scores["task"] == task)]
    stored = rows[rows["metric"].astype(str).str.startswith(STORED_PREFIXES)]
    columns = ["metric", "value", "ci_low", "ci_high", "n", "higher_is_better"]
    return stored[columns].sort_values("metric", ignore_index=True)
