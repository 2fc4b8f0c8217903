"""Inter-rater agreement: Krippendorff's alpha (with a bootstrap interval) and Cohen's kappa.

Alpha uses the coincidence-matrix formulation of Krippendorff (2011), "Computing Krippendorff's
alpha-reliability": for every unit with m >= 2 values, each ordered pair of values from different
raters adds 1 / (m - 1) to the coincidence o[c, k]. With n_c the margins and n their sum,

    alpha = 1 - (n - 1) * sum_ck o[c, k] delta²(c, k) / sum_ck n_c n_k delta²(c, k)

where delta² is 1 for unequal values (nominal) or (c - k)² (interval). Units rated once carry no
information about agreement and drop out. The interval resamples units with replacement: raters
rate units, so units are the independent draws.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "Agreement",
    "Level",
    "alpha_from_long",
    "cohen_kappa",
    "coincidence_matrix",
    "krippendorff_alpha",
    "pairwise_kappas",
    "reliability_matrix",
]

Level = Literal["nominal", "interval"]


@dataclass(frozen=True)
class Agreement:
    alpha: float  # NaN when there is nothing to agree on (one value only, or no unit rated twice)
    ci_low: float | None
    ci_high: float | None
    units: int  # units with at least two values
    pairable: int  # values in those units
    level: Level


def _value_counts(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts): the sorted distinct values and a units × values count matrix."""
    present = ~np.isnan(data)
    values = np.unique(data[present])
    counts = np.zeros((data.shape[1], values.size))
    raters, units = np.nonzero(present)
    np.add.at(counts, (units, np.searchsorted(values, data[raters, units])), 1.0)
    return values, counts


def _coincidences(counts: np.ndarray) -> np.ndarray:
    pairable = counts.sum(axis=1)
    keep = pairable >= 2
    counts, pairable = counts[keep], pairable[keep]
    weights = 1.0 / (pairable - 1.0)
    # sum_u (c_u c_uᵀ - diag(c_u)) / (m_u - 1), as two matrix products instead of a loop over units.
    return (counts.T * weights) @ counts - np.diag(weights @ counts)


def coincidence_matrix(data: np.ndarray | Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(values, o): the coincidence matrix of a raters × units array with NaN for missing."""
    values, counts = _value_counts(np.asarray(data, dtype=np.float64))
    return values, _coincidences(counts)


def _delta(values: np.ndarray, level: Level) -> np.ndarray:
    if level == "nominal":
        return 1.0 - np.eye(values.size)
    if level == "interval":
        return np.subtract.outer(values, values) ** 2
    raise ValueError(f"level must be 'nominal' or 'interval', not {level!r}")


def _alpha(counts: np.ndarray, delta: np.ndarray) -> float:
    o = _coincidences(counts)
    margins = o.sum(axis=1)
    n = margins.sum()
    expected = float(margins @ delta @ margins)
    if n <= 1 or expected <= 0:
        return math.nan
    return 1.0 - (n - 1.0) * float((o * delta).sum()) / expected


def krippendorff_alpha(data: np.ndarray | Sequence[Sequence[float]], level: Level = "interval") -> float:
    """Alpha of a raters × units array (NaN = not rated); nominal labels must be coded as numbers."""
    values, counts = _value_counts(np.asarray(data, dtype=np.float64))
    return _alpha(counts, _delta(values, level))


def _bootstrap(
    counts: np.ndarray, delta: np.ndarray, resamples: int, confidence: float, seed: int
) -> tuple[float | None, float | None]:
    if resamples <= 0 or counts.shape[0] < 2:
        return None, None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, counts.shape[0], size=(resamples, counts.shape[0]))
    replicates = np.array([_alpha(counts[draw], delta) for draw in draws])
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size < resamples / 2:  # mostly degenerate resamples: no honest interval
        return None, None
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def reliability_matrix(
    long: pd.DataFrame, *, unit: str = "unit", rater: str = "rater", value: str = "value"
) -> np.ndarray:
    """A raters × units float array (NaN = not rated) from one row per (unit, rater, value)."""
    if long.empty:
        return np.empty((0, 0))
    table = long.pivot_table(index=rater, columns=unit, values=value, aggfunc="first")
    return table.to_numpy(dtype=np.float64)


def alpha_from_long(
    long: pd.DataFrame,
    level: Level,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Agreement:
    """Alpha with a percentile bootstrap interval, from columns unit, rater, value (numbers)."""
    data = reliability_matrix(long)
    if data.size == 0:
        return Agreement(math.nan, None, None, 0, 0, level)
    values, counts = _value_counts(data)
    pairable = counts.sum(axis=1)
    counts = counts[pairable >= 2]
    if counts.shape[0] == 0:
        return Agreement(math.nan, None, None, 0, 0, level)
    delta = _delta(values, level)
    alpha = _alpha(counts, delta)
    low, high = (None, None) if math.isnan(alpha) else _bootstrap(counts, delta, resamples, confidence, seed)
    return Agreement(alpha, low, high, int(counts.shape[0]), int(counts.sum()), level)


def cohen_kappa(
    first: Sequence[object],
    second: Sequence[object],
    *,
    labels: Sequence[object] | None = None,
    weights: Literal["linear", "quadratic"] | None = None,
) -> float:
    """Cohen's kappa of two raters over the same units; weights count label positions apart.

    NaN when chance agreement is already perfect (both raters used one and the same label).
    """
    if len(first) != len(second):
        raise ValueError("both raters need a label for every unit")
    order = list(labels) if labels is not None else sorted(set(first) | set(second), key=str)
    index = {label: position for position, label in enumerate(order)}
    confusion = np.zeros((len(order), len(order)))
    np.add.at(confusion, ([index[a] for a in first], [index[b] for b in second]), 1.0)
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / max(confusion.sum(), 1.0)
    positions = np.arange(len(order))
    apart = np.abs(np.subtract.outer(positions, positions)).astype(np.float64)
    penalty = {None: (apart > 0).astype(np.float64), "linear": apart, "quadratic": apart**2}[weights]
    chance = float((penalty * expected).sum())
    if chance == 0.0:
        return math.nan
    return 1.0 - float((penalty * confusion).sum()) / chance


def pairwise_kappas(
    long: pd.DataFrame,
    *,
    labels: Sequence[object] | None = None,
    weights: Literal["linear", "quadratic"] | None = None,
    min_shared: int = 2,
) -> pd.DataFrame:
    """Cohen's kappa for every pair of raters over the units both rated (columns unit, rater, value)."""
    columns = ["rater_a", "rater_b", "shared", "kappa"]
    rows: list[dict[str, object]] = []
    by_rater = {
        str(rater): group.drop_duplicates("unit").set_index("unit")["value"]
        for rater, group in long.groupby("rater", sort=True)
    }
    for first, second in itertools.combinations(sorted(by_rater), 2):
        shared = by_rater[first].index.intersection(by_rater[second].index)
        if len(shared) < min_shared:
            continue
        a, b = by_rater[first].loc[shared].tolist(), by_rater[second].loc[shared].tolist()
        kappa = cohen_kappa(a, b, labels=labels, weights=weights)
        rows.append({"rater_a": first, "rater_b": second, "shared": len(shared), "kappa": kappa})
    return pd.DataFrame(rows, columns=columns)
