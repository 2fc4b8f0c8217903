"""How human judgements line up with the automatic metrics, document by document.

Both sides are per-document: a rubric item's mean score over its raters against the metric value
of that run's sample (exact match 0/1, a chrF, ...), and a pairwise item's mean preference for the
first run (1 won, 0.5 tie, 0 lost) against the first run's metric minus the second's. Per-document
values come from the samples' additive statistics through the registered metric, exactly as the
corpus score does, so a document's value is the score that document alone would get.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from harness.errors import HarnessError
from harness.metrics import get_metric
from harness.store.statistics import bare_values, decode_statistics, metric_names, statistics_matrix

__all__ = ["metric_correlations", "preference_scores", "sample_metric_values"]

_COLUMNS = ["question", "task", "metric", "n", "pearson", "spearman", "p_value"]


def _per_document(name: str, rows: list[dict[str, float]]) -> np.ndarray:
    try:
        metric = get_metric(name)
    except HarnessError:
        return bare_values(rows, name)[:, 0]  # an unregistered plugin
    matrix, _ = statistics_matrix(rows, metric)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(metric.aggregate(matrix), dtype=np.float64)


def sample_metric_values(samples: pd.DataFrame) -> pd.DataFrame:
    """Long table run_id, task, doc_id, metric, value from the samples' `statistics` JSON."""
    frames: list[pd.DataFrame] = []
    for task, group in samples.groupby("task", sort=True):
        rows = [decode_statistics(text) for text in group["statistics"]]
        for name in metric_names(rows):
            frames.append(
                pd.DataFrame(
                    {
                        "run_id": group["run_id"].to_numpy(),
                        "task": task,
                        "doc_id": group["doc_id"].astype("int64").to_numpy(),
                        "metric": name,
                        "value": _per_document(name, rows),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["run_id", "task", "doc_id", "metric", "value"])
    return pd.concat(frames, ignore_index=True)


def preference_scores(ratings: pd.DataFrame) -> pd.Series:
    """Per rating row of a pairwise campaign: 1 if run_a won, 0 if run_b won, 0.5 for tie/both bad."""
    winner = ratings["winner_run"]
    score = np.where(winner == ratings["run_a"], 1.0, np.where(winner == ratings["run_b"], 0.0, 0.5))
    return pd.Series(score, index=ratings.index, name="preference")


def _correlate(group: pd.DataFrame) -> dict[str, float | int]:
    data = group[["human", "value"]].replace([np.inf, -np.inf], np.nan).dropna()
    n = len(data)
    if n < 3 or data["human"].nunique() < 2 or data["value"].nunique() < 2:
        return {"n": n, "pearson": math.nan, "spearman": math.nan, "p_value": math.nan}
    spearman = stats.spearmanr(data["human"], data["value"])
    return {
        "n": n,
        "pearson": float(stats.pearsonr(data["human"], data["value"]).statistic),
        "spearman": float(spearman.statistic),
        "p_value": float(spearman.pvalue),
    }


def _table(joined: pd.DataFrame) -> pd.DataFrame:
    rows = [
        {"question": question, "task": task, "metric": metric, **_correlate(group)}
        for (question, task, metric), group in joined.groupby(["question", "task", "metric"], sort=True)
    ]
    return pd.DataFrame(rows, columns=_COLUMNS)


def metric_correlations(ratings: pd.DataFrame, metric_values: pd.DataFrame) -> pd.DataFrame:
    """question, task, metric, n, pearson, spearman, p_value (Spearman's) over rated documents.

    `ratings` are the non-gold rows of one campaign (the Parquet `ratings` shape).
    """
    if ratings.empty or metric_values.empty:
        return pd.DataFrame(columns=_COLUMNS)
    keys = ["task", "doc_id"]
    values = metric_values.assign(doc_id=metric_values["doc_id"].astype("int64"))
    rated = ratings.assign(doc_id=ratings["doc_id"].astype("int64"))
    if (ratings["mode"] == "rubric").all():
        human = rated.groupby(["question", "run_id", *keys])["value"].mean().reset_index(name="human")
        return _table(human.merge(values, on=["run_id", *keys]))
    rated = rated.assign(human=preference_scores(rated))
    human = rated.groupby(["question", "run_a", "run_b", *keys])["human"].mean().reset_index()
    first = values.rename(columns={"run_id": "run_a", "value": "value_a"})
    second = values.rename(columns={"run_id": "run_b", "value": "value_b"})
    joined = human.merge(first, on=["run_a", *keys]).merge(second, on=["run_b", *keys, "metric"])
    return _table(joined.assign(value=joined["value_a"] - joined["value_b"]))
