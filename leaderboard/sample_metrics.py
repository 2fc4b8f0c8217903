"""Per-document metric values and subset scores, rebuilt from the samples' stored statistics.

Samples store each metric's additive statistics as JSON (`{"acc/correct": 1.0, "acc/count": 1.0}`,
or a bare `{"acc": 1.0}`), read here through the store's codec (`harness.store.statistics`). Since a
corpus value is a function of summed statistics, the same aggregate gives one document's value (its
own row) and any subset's value (a group's sum), and `metrics.score` gives that subset the same kind
of interval the stored scores carry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.metrics import Metric, get_metric, metric_from_signature
from harness.metrics import score as score_statistics
from harness.metrics.base import is_derived_metric
from harness.store.statistics import bare_values, decode_statistics, statistics_matrix
from harness.store.statistics import metric_names as stored_metric_names

__all__ = [
    "SubsetScore",
    "known_metric",
    "metric_names",
    "per_sample_values",
    "statistics_for",
    "subset_score",
]


def metric_names(statistics: pd.Series) -> list[str]:
    """Metric names present in a statistics column, in first-seen order."""
    return stored_metric_names(statistics.head(50))


def signature_of(scores: pd.DataFrame, run_id: str, task: str, metric: str) -> str | None:
    """The stored signature of one score row (settings included), or None when the run lacks it."""
    match = scores[(scores["run_id"] == run_id) & (scores["task"] == task) & (scores["metric"] == metric)]
    return None if match.empty else str(match["signature"].iloc[0])


def known_metric(name: str, signature: str | None = None) -> Metric | None:
    """The metric called `name`, rebuilt from its stored signature when that works (settings such as
    F1's labels or BLEU's smoothing change how statistics aggregate), or None for a derived score."""
    if is_derived_metric(name):
        return None
    if signature:
        try:
            return metric_from_signature(signature)
        except HarnessError:
            pass  # a signature from another harness version or a plugin: fall back to the name
    try:
        return get_metric(name)
    except HarnessError:
        return None  # a plugin metric that is not installed here: fall back to bare values


def statistics_for(
    statistics: pd.Series, name: str, signature: str | None = None
) -> tuple[np.ndarray, Metric | None]:
    """The (n, k) statistics of metric `name` in its `statistic_names` order, and the metric.

    Rows that lack them are NaN. Without a registered metric, a bare per-document value is (n, 1).
    """
    rows = [decode_statistics(text) for text in statistics]
    metric = known_metric(name, signature)
    if metric is None:
        return bare_values(rows, name), None
    matrix, _ = statistics_matrix(rows, metric)
    return matrix, metric


def per_sample_values(statistics: pd.Series, name: str, signature: str | None = None) -> pd.Series:
    """Each document's own value of metric `name` (NaN where it is missing), indexed like the input."""
    matrix, metric = statistics_for(statistics, name, signature)
    if metric is None:
        values = matrix[:, 0]
    else:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values = np.asarray(metric.aggregate(matrix), dtype=np.float64)
    return pd.Series(values, index=statistics.index, name=name)


@dataclass(frozen=True)
class SubsetScore:
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int
    method: str  # how the interval was made: "wilson/normal", "normal" or "bootstrap"


def subset_score(
    statistics: pd.Series,
    name: str,
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    signature: str | None = None,
) -> SubsetScore:
    """Metric `name` over the given documents, with an interval made the way the runner makes it.

    Mean metrics get the runner's closed-form interval (Wilson's for proportions such as accuracy and
    exact match, normal otherwise); ratio metrics
    (perplexities) a seeded bootstrap (BCa), as the runner. Unregistered metrics: the mean of the bare
    per-document values with a normal interval.
    """
    matrix, metric = statistics_for(statistics, name, signature)
    matrix = matrix[~np.isnan(matrix).any(axis=1)]
    n = int(matrix.shape[0])
    if n == 0:
        return SubsetScore(value=math.nan, ci_low=None, ci_high=None, n=0, method="none")
    if metric is not None:
        result = score_statistics(
            metric, matrix, bootstrap_resamples=resamples, seed=seed, confidence=confidence
        )
        return SubsetScore(
            value=result.value,
            ci_low=result.ci_low,
            ci_high=result.ci_high,
            n=n,
            method="wilson/normal" if metric.is_mean else "bootstrap",
        )
    values = matrix[:, 0]
    mean = float(values.mean())
    if n < 2:
        return SubsetScore(value=mean, ci_low=None, ci_high=None, n=n, method="normal")
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * float(values.std(ddof=1)) / math.sqrt(n)
    return SubsetScore(value=mean, ci_low=mean - half, ci_high=mean + half, n=n, method="normal")
