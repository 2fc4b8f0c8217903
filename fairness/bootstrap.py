"""Point values and stratified percentile-bootstrap intervals of functions of summed statistics.

Every fairness number is a function of per-stratum totals of additive per-sample statistics (a group's
correct answers and count, its selections and positives, ...), so one resampler serves all of them.
Samples are resampled *within* their stratum (a group, or a group and gold class): every replicate
keeps the design's group sizes, so no group goes missing from a replicate and a rate conditioned on
the gold class keeps its denominator. The probes fix their group sizes by construction, and a
between-group gap is a statement about groups of those sizes.

As in `metrics.uncertainty`, the interval is the percentile interval of the replicates and the
standard error is their standard deviation; draws depend only on (seed, strata sizes, resamples).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

# Cells of one (chunk, stratum size) count matrix held at once, as in metrics.uncertainty.
_MAX_CELLS = 1 << 22

# Stratum totals (..., strata, k) -> one value per leading index (...).
Quantity = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Estimate:
    """A number with its uncertainty; `value` is NaN when the number is not computable."""

    value: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    @property
    def computable(self) -> bool:
        return math.isfinite(self.value)


NOT_COMPUTABLE = Estimate(math.nan, None, None, None, 0)


def stratum_totals(statistics: np.ndarray, codes: np.ndarray, strata: int) -> np.ndarray:
    """Summed statistics of each stratum, shape (strata, k); samples with code -1 are left out."""
    totals = np.zeros((strata, statistics.shape[1]), dtype=np.float64)
    kept = codes >= 0
    np.add.at(totals, codes[kept], statistics[kept])
    return totals


def _resampled_totals(
    statistics: np.ndarray, codes: np.ndarray, strata: int, resamples: int, seed: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(first resample index, stratum totals of each resample in the chunk (b, strata, k))."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(codes == stratum) for stratum in range(strata)]
    largest = max((len(indices) for indices in members), default=1)
    chunk = max(1, _MAX_CELLS // max(largest, 1))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        totals = np.zeros((size, strata, statistics.shape[1]), dtype=np.float64)
        for stratum, indices in enumerate(members):
            count = len(indices)
            if count == 0:
                continue
            drawn = rng.integers(0, count, size=(size, count))
            # One bincount counts every row at once: each row gets its own block of `count` bins.
            offsets = (np.arange(size, dtype=np.int64) * count)[:, None]
            counts = np.bincount((drawn + offsets).ravel(), minlength=size * count).reshape(size, count)
            totals[:, stratum, :] = counts.astype(np.float64) @ statistics[indices]
        yield start, totals


def estimate(
    quantities: Sequence[tuple[Quantity, int]],
    statistics: np.ndarray,
    codes: np.ndarray,
    strata: int,
    *,
    resamples: int,
    seed: int,
    confidence: float = 0.95,
    clusters: Sequence[object] | None = None,
) -> list[Estimate]:
    """Each (quantity, n) as an Estimate: its value on all samples and a bootstrap interval.

    `codes` gives each sample's stratum (-1: left out). With `clusters`, whole clusters are
    resampled instead (see `_estimate_clustered`). All quantities share one set of draws. A
    replicate whose value is not finite (say a ratio whose denominator came out 0) is left out of
    the interval; with fewer than two finite replicates, or a point value that is not computable,
    there is no interval.
    """
    if clusters is not None:
        return _estimate_clustered(
            quantities,
            statistics,
            codes,
            strata,
            clusters,
            resamples=resamples,
            seed=seed,
            confidence=confidence,
        )
    stats = np.asarray(statistics, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    totals = stratum_totals(stats, codes, strata)
    points = [float(quantity(totals)) for quantity, _ in quantities]
    replicates = np.full((len(quantities), resamples), np.nan)
    if resamples >= 2 and any(math.isfinite(point) for point in points):
        kept = codes >= 0
        for start, chunk in _resampled_totals(stats[kept], codes[kept], strata, resamples, seed):
            for index, (quantity, _) in enumerate(quantities):
                with np.errstate(divide="ignore", invalid="ignore"):
                    replicates[index, start : start + chunk.shape[0]] = quantity(chunk)
    results = []
    tail = (1.0 - confidence) / 2
    for (_, n), point, values in zip(quantities, points, replicates, strict=True):
        finite = values[np.isfinite(values)]
        if not math.isfinite(point) or finite.size < 2:
            results.append(Estimate(point, None, None, None, n))
            continue
        low, high = np.quantile(finite, [tail, 1.0 - tail])
        results.append(Estimate(point, float(np.std(finite, ddof=1)), float(low), float(high), n))
    return results


def _estimate_clustered(
    quantities: Sequence[tuple[Quantity, int]],
    statistics: np.ndarray,
    codes: np.ndarray,
    strata: int,
    clusters: Sequence[object],
    *,
    resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> list[Estimate]:
    """`estimate`, resampling whole clusters instead of samples.

    In a counterfactual design every group answers the same templates; resampling templates keeps
    the groups paired in every replicate, so a model that treats all groups alike has a gap of 0 in
    every replicate. Resampling groups independently would add noise that is not in the design.
    """
    stats = np.asarray(statistics, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    index: dict[str, int] = {}
    members = np.array([index.setdefault(str(cluster), len(index)) for cluster in clusters], dtype=np.int64)
    width = stats.shape[1]
    per_cluster = np.zeros((len(index), strata, width), dtype=np.float64)
    kept = codes >= 0
    np.add.at(per_cluster, (members[kept], codes[kept]), stats[kept])

    def unfolded(quantity: Quantity) -> Quantity:
        # One stratum of clusters whose statistics are the flattened (strata, k) totals.
        return lambda totals: quantity(totals.reshape(*totals.shape[:-2], strata, width))

    return estimate(
        [(unfolded(quantity), n) for quantity, n in quantities],
        per_cluster.reshape(len(index), strata * width),
        np.zeros(len(index), dtype=np.int64),
        1,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
    )


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN (not computable) where the denominator is 0, never 0 or inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator == 0, np.nan, numerator / np.where(denominator == 0, 1.0, denominator))


def spread(values: np.ndarray) -> np.ndarray:
    """Largest minus smallest over the last axis (fairlearn's between_groups difference)."""
    return np.asarray(values.max(axis=-1) - values.min(axis=-1), dtype=np.float64)


def min_over_max(values: np.ndarray) -> np.ndarray:
    """Smallest over largest (fairlearn's between_groups ratio); NaN unless all values are >= 0
    and the largest is positive, where a ratio has no meaning."""
    low, high = values.min(axis=-1), values.max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where((low >= 0) & (high > 0), low / np.where(high > 0, high, 1.0), np.nan))


__all__ = [
    "NOT_COMPUTABLE",
    "Estimate",
    "Quantity",
    "estimate",
    "min_over_max",
    "safe_divide",
    "spread",
]
