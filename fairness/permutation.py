"""Permutation tests of between-group numbers, and Holm's correction across several of them.

Under the null hypothesis the group a sample belongs to is exchangeable: shuffling the group labels
(within blocks, when the design pairs samples) leaves the distribution of any between-group number
unchanged. The p-value is the share of shuffles whose number is at least as extreme as the observed
one, counting the observed labelling itself: p = (1 + #{extreme}) / (1 + permutations), so it is
never 0 and is exactly valid (uniform or conservative) under the null.

Draws are fixed by the seed: shuffle b permutes each block in turn with `rng.permutation`, blocks in
the sorted order of their text, so a direct loop with the same seed reproduces every shuffle (the
golden tests do). The statistics of all shuffles are computed at once from per-group totals, as the
bootstrap does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np

from harness.fairness.bootstrap import Quantity

# More extreme means larger ("greater": a difference) or smaller ("less": a ratio, 1 = parity).
Direction = Literal["greater", "less"]

# Shuffled label rows (shuffles x samples) held at once.
_MAX_CELLS = 1 << 22
# Observed and shuffled values this close count as equal (sums of floats in a different order).
_TIE = 1e-12


def block_codes(blocks: Sequence[object] | None, size: int) -> np.ndarray:
    """Each sample's block as an index (one block when `blocks` is None); blocks are numbered in
    the sorted order of their text, which is the order they are shuffled in."""
    if blocks is None:
        return np.zeros(size, dtype=np.int64)
    keys = [str(block) for block in blocks]
    index = {key: position for position, key in enumerate(sorted(set(keys)))}
    return np.array([index[key] for key in keys], dtype=np.int64)


def shuffled_codes(
    codes: np.ndarray, blocks: np.ndarray, permutations: int, seed: int
) -> Iterator[np.ndarray]:
    """Chunks (shuffles x samples) of group codes, each row shuffled within blocks.

    Samples with code -1 (no group) are left out by the caller; every code here is a group.
    """
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(blocks == block) for block in np.unique(blocks)]
    chunk = max(1, _MAX_CELLS // max(len(codes), 1))
    for start in range(0, permutations, chunk):
        rows = min(chunk, permutations - start)
        out = np.empty((rows, len(codes)), dtype=np.int64)
        for row in range(rows):
            shuffled = codes.copy()
            for indices in members:
                shuffled[indices] = codes[indices][rng.permutation(len(indices))]
            out[row] = shuffled
        yield out


def shuffled_totals(statistics: np.ndarray, shuffled: np.ndarray, strata: int) -> np.ndarray:
    """Per-group totals (shuffles, strata, k) of every shuffled labelling at once."""
    rows = shuffled.shape[0]
    flat = (shuffled + (np.arange(rows, dtype=np.int64) * strata)[:, None]).ravel()
    totals = np.empty((rows * strata, statistics.shape[1]), dtype=np.float64)
    for column in range(statistics.shape[1]):
        weights = np.tile(statistics[:, column], rows)
        totals[:, column] = np.bincount(flat, weights=weights, minlength=rows * strata)
    return totals.reshape(rows, strata, statistics.shape[1])


def permutation_p_values(
    tests: Sequence[tuple[Quantity, Direction]],
    statistics: np.ndarray,
    codes: np.ndarray,
    strata: int,
    *,
    permutations: int,
    seed: int,
    blocks: Sequence[object] | None = None,
) -> list[float]:
    """The p-value of each (quantity of group totals, direction); NaN when the observed number is
    not computable or `permutations` is 0. All tests share one set of shuffles.

    Samples with code -1 stay out; with `blocks`, labels are shuffled only within a block (the
    variants of one counterfactual template, or one gold class for error rates).
    """
    stats = np.asarray(statistics, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    kept = codes >= 0
    block = block_codes(blocks, len(codes))[kept]
    stats, codes = stats[kept], codes[kept]
    observed_totals = np.zeros((strata, stats.shape[1]), dtype=np.float64)
    np.add.at(observed_totals, codes, stats)
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = [float(quantity(observed_totals)) for quantity, _ in tests]
    if permutations <= 0 or not any(math.isfinite(value) for value in observed):
        return [math.nan] * len(tests)
    extreme = np.zeros(len(tests), dtype=np.int64)
    finite = np.zeros(len(tests), dtype=np.int64)
    for shuffled in shuffled_codes(codes, block, permutations, seed):
        totals = shuffled_totals(stats, shuffled, strata)
        for index, (quantity, direction) in enumerate(tests):
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.asarray(quantity(totals), dtype=np.float64)
            ok = np.isfinite(values)
            finite[index] += int(np.count_nonzero(ok))
            if direction == "greater":
                extreme[index] += int(np.count_nonzero(values[ok] >= observed[index] - _TIE))
            else:
                extreme[index] += int(np.count_nonzero(values[ok] <= observed[index] + _TIE))
    return [
        (1.0 + float(extreme[i])) / (1.0 + float(finite[i])) if math.isfinite(observed[i]) else math.nan
        for i in range(len(tests))
    ]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (statsmodels' multipletests(method='holm')); NaN stays
    NaN and does not count towards the number of tests."""
    values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(values), np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]
    tests = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (tests - rank) * float(values[index])))
        adjusted[index] = running
    return [float(value) for value in adjusted]


__all__ = [
    "Direction",
    "block_codes",
    "holm",
    "permutation_p_values",
    "shuffled_codes",
    "shuffled_totals",
]
