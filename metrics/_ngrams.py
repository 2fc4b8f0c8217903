"""Exact clipped n-gram match counts for a whole corpus at once.

sacrebleu and rouge-score build one `Counter` per sentence and loop over its n-grams in Python,
which dominates their run time on large corpora. Here every sequence of the corpus lives in one
integer array. The n-grams of order n are grouped by refining the order n-1 groups with one more
symbol (a sort of packed integer keys: exact, no hashing), so all orders cost a few vectorised
passes. Only positions whose (n-1)-gram occurs on both sides of its unit are carried to order n:
no other n-gram can match there.

A *unit* is what one clipped count is taken over: a hypothesis and one or more references. The
clipped count of an n-gram is min(hypothesis count, max over the unit's references), which is
BLEU's multi-reference rule and, with one reference per unit, chrF's and ROUGE-N's rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Corpus", "clipped_matches", "encode_chars", "encode_tokens", "ngram_totals"]


@dataclass(frozen=True)
class Corpus:
    """Sequences of integer symbols, concatenated; `unit` and `side` (0 = hypothesis, 1.. = reference
    slot) say what each sequence is."""

    symbols: np.ndarray  # (total,) int64, each symbol < alphabet
    lengths: np.ndarray  # (sequences,) int64
    unit: np.ndarray  # (sequences,) int64
    side: np.ndarray  # (sequences,) int64
    alphabet: int


def encode_tokens(token_lists: Sequence[Sequence[str]], unit: ArrayLike, side: ArrayLike) -> Corpus:
    import pandas as pd  # imported on first use: `import metrics` stays light

    flat = [token for tokens in token_lists for token in tokens]
    symbols = np.zeros(0, dtype=np.int64)
    alphabet = 1
    if flat:
        # pandas hashes the strings in C; the codes are a dense alphabet of the corpus's tokens.
        codes, uniques = pd.factorize(pd.Series(flat, dtype=object))
        symbols, alphabet = np.asarray(codes, dtype=np.int64), len(uniques)
    return Corpus(
        symbols=symbols,
        lengths=np.fromiter((len(tokens) for tokens in token_lists), np.int64, len(token_lists)),
        unit=np.asarray(unit, dtype=np.int64),
        side=np.asarray(side, dtype=np.int64),
        alphabet=alphabet,
    )


def encode_chars(texts: Sequence[str], unit: ArrayLike, side: ArrayLike) -> Corpus:
    # One UTF-32 encode of the whole corpus gives every code point; 'surrogatepass' keeps lone
    # surrogates (legal in a Python str) as their own symbols instead of failing.
    points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4")
    # Dense ids keep the packed sort keys small (see _group).
    present, symbols = np.unique(points, return_inverse=True)
    return Corpus(
        symbols=symbols.astype(np.int64),
        lengths=np.fromiter((len(text) for text in texts), np.int64, len(texts)),
        unit=np.asarray(unit, dtype=np.int64),
        side=np.asarray(side, dtype=np.int64),
        alphabet=max(1, len(present)),
    )


def ngram_totals(lengths: np.ndarray, max_order: int) -> np.ndarray:
    """Number of n-grams of each order 1..max_order in sequences of the given lengths: (len, orders)."""
    orders = np.arange(1, max_order + 1)
    return np.maximum(np.asarray(lengths)[:, None] - orders[None, :] + 1, 0).astype(np.float64)


def _group(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense group ids of integer keys (equal keys, equal ids) and the number of groups."""
    if keys.size == 0:
        return np.zeros(0, np.int64), 0
    index_bits = max(1, int(keys.size - 1).bit_length())
    if int(keys.max()).bit_length() + index_bits <= 62:
        # A plain sort of key<<bits|position is much faster than an argsort, and the positions
        # come back from the low bits.
        packed = np.sort((keys << index_bits) | np.arange(keys.size, dtype=np.int64))
        sorted_keys = packed >> index_bits
        starts = np.empty(keys.size, dtype=bool)
        starts[0] = True
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
        ids = np.empty(keys.size, dtype=np.int64)
        ids[packed & ((1 << index_bits) - 1)] = np.cumsum(starts) - 1
        return ids, int(starts.sum())
    import pandas as pd

    codes, uniques = pd.factorize(keys)  # exact hashing of int64; only for very large corpora
    return np.asarray(codes, dtype=np.int64), len(uniques)


def clipped_matches(corpus: Corpus, n_units: int, max_order: int) -> np.ndarray:
    """Sum over n-grams of min(hypothesis count, max reference count), per unit and order: (units, orders)."""
    result = np.zeros((n_units, max_order), dtype=np.float64)
    n_sides = int(corpus.side.max()) + 1 if corpus.side.size else 1
    if n_sides < 2 or corpus.symbols.size == 0:
        return result
    sequence = np.repeat(np.arange(corpus.lengths.size), corpus.lengths)
    ends = np.cumsum(corpus.lengths)
    position = np.arange(corpus.symbols.size, dtype=np.int64)
    remaining = ends[sequence] - position  # symbols from this position to the end of its sequence
    side = corpus.side[sequence]
    unit = corpus.unit[sequence]
    group = unit  # order 0: all positions of a unit form one group
    for order in range(1, max_order + 1):
        room = remaining >= order
        position, remaining, side, unit, group = (a[room] for a in (position, remaining, side, unit, group))
        if position.size == 0:
            break
        if int(group.max()) >= (1 << 62) // corpus.alphabet:  # beyond any real corpus; fail loudly
            raise OverflowError("corpus too large for exact n-gram grouping")
        ids, n_groups = _group(group * corpus.alphabet + corpus.symbols[position + order - 1])
        counts = np.bincount(ids * n_sides + side, minlength=n_groups * n_sides).reshape(n_groups, n_sides)
        clipped = np.minimum(counts[:, 0], counts[:, 1:].max(axis=1))
        group_unit = np.empty(n_groups, dtype=np.int64)
        group_unit[ids] = unit
        result[:, order - 1] = np.bincount(group_unit, weights=clipped, minlength=n_units)
        shared = clipped[ids] > 0
        position, remaining, side, unit, group = (a[shared] for a in (position, remaining, side, unit, ids))
    return result
