"""Corpus scores with standard errors and confidence intervals.

Mean metrics use lm-eval's closed form (sample std with ddof=1 over sqrt(n)), so their stderr
equals lm-eval's. Every other metric gets a seeded bootstrap, written once for all metrics: a
resample is a vector of counts (how often each document was drawn), and since metrics only need
summed statistics, the totals of all resamples are one matrix product, counts (B, n) @ stats (n, k).

Resampling depends only on (seed, n, resamples), never on the statistics, so replicates computed
with the same seed for two systems on the same documents are paired draws; paired comparisons
rely on this.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from harness.errors import HarnessError
from metrics.base import Metric, Score

# Cells of the (chunk, n) index and count matrices held at once (~32 MiB each as int64): large
# corpora are resampled in chunks instead of materialising B x n at once.
_MAX_CELLS = 1 << 22


def _as_statistics(metric: Metric, statistics: np.ndarray) -> np.ndarray:
    stats = np.asarray(statistics, dtype=np.float64)
    k = len(metric.statistic_names)
    if stats.ndim != 2 or stats.shape[1] != k:
        raise ValueError(
            f"metric '{metric.name}' needs statistics of shape (n, {k}) "
            f"({', '.join(metric.statistic_names)}), got {stats.shape}"
        )
    return stats


def bootstrap_replicates(metric: Metric, statistics: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Metric values of `resamples` bootstrap resamples of the documents, shape (resamples,)."""
    stats = _as_statistics(metric, statistics)
    n = stats.shape[0]
    if n == 0:
        raise HarnessError(f"metric '{metric.name}': cannot bootstrap zero samples")
    if resamples < 0:
        raise HarnessError(f"bootstrap resamples must be >= 0, got {resamples}")
    rng = np.random.default_rng(seed)
    replicates = np.empty(resamples, dtype=np.float64)
    # The chunk size depends on n only, so the draws (and thus pairing) never depend on the metric.
    chunk = max(1, _MAX_CELLS // n)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        indices = rng.integers(0, n, size=(size, n))
        # Offset each row into its own block of n bins so one bincount counts every row at once.
        offsets = (np.arange(size, dtype=np.int64) * n)[:, None]
        counts = np.bincount((indices + offsets).ravel(), minlength=size * n).reshape(size, n)
        totals = counts.astype(np.float64) @ stats
        replicates[start : start + size] = metric.aggregate(totals)
    return replicates


def score(
    metric: Metric,
    statistics: np.ndarray,
    *,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Score:
    """Corpus value, stderr and a `confidence` interval from per-document statistics (n, k).

    `bootstrap_resamples=0` turns the bootstrap off (stderr/CI None for non-mean metrics), like
    lm-eval's bootstrap_iters=0; mean metrics keep their closed-form stderr. With n == 1 there is no
    spread to estimate, so stderr and CI are None.
    """
    stats = _as_statistics(metric, statistics)
    n = stats.shape[0]
    if n == 0:
        raise HarnessError(f"metric '{metric.name}': no samples to score")
    if not 0.0 < confidence < 1.0:
        raise HarnessError(f"confidence must be between 0 and 1, got {confidence}")
    if bootstrap_resamples < 0:
        raise HarnessError(f"bootstrap resamples must be >= 0, got {bootstrap_resamples}")

    value = float(metric.aggregate(stats.sum(axis=0)))
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    if n > 1 and metric.is_mean:
        # lm-eval's mean_stderr; the interval is the matching normal (Wald) interval.
        stderr = float(np.std(stats[:, 0], ddof=1) / math.sqrt(n))
        half_width = NormalDist().inv_cdf(0.5 + confidence / 2) * stderr
        ci_low, ci_high = value - half_width, value + half_width
    elif n > 1 and bootstrap_resamples >= 2:
        replicates = bootstrap_replicates(metric, stats, bootstrap_resamples, seed)
        stderr = float(np.std(replicates, ddof=1))
        # Percentile interval: no normality assumption, and it respects skew (perplexities).
        tail = (1.0 - confidence) / 2
        low, high = np.quantile(replicates, [tail, 1.0 - tail])
        ci_low, ci_high = float(low), float(high)

    return Score(
        metric=metric.name,
        value=value,
        stderr=stderr,
        ci_low=ci_low,
        ci_high=ci_high,
        n=n,
        higher_is_better=metric.higher_is_better,
        signature=metric.signature(),
    )


__all__ = ["bootstrap_replicates", "score"]
