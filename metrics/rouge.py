"""ROUGE-1/2/L/Lsum with rouge-score's tokeniser and numbers (Lin, 2004), several times faster.

Text goes through rouge-score's own tokeniser (lowercase, ASCII letters and digits, optional Porter
stemming), so tokens are identical. Scoring is ours: ROUGE-N clipped n-gram overlaps are counted
corpus-wide (`metrics._ngrams`), ROUGE-L's LCS length uses the bit-parallel algorithm (Hyyrö,
2004) on Python integers, and tokens are cached across ROUGE types. ROUGE-Lsum needs the LCS
itself, not only its length, and follows rouge-score's DP table and read-out order, since which of
several longest subsequences is taken changes the union-LCS hits.

As with `RougeScorer.score_multi`, several references give the scores of the reference with the
highest F-measure (the first one on ties). The corpus value is the mean per-document score (as
rouge-score users average); its interval is a bootstrap one, like rouge-score's BootstrapAggregator.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rouge_score import tokenize as rouge_tokenize

from harness.errors import HarnessError
from harness.metrics._ngrams import clipped_matches, encode_tokens, ngram_totals
from harness.metrics.base import (
    METRICS,
    SampleOutcome,
    check_output_type,
    make_signature,
    mean_of_first,
    require,
)

__all__ = ["Rouge", "lcs_length", "rouge_tokens"]

MEASURES = ("fmeasure", "precision", "recall")


class _CachedStemmer:
    """rouge-score's PorterStemmer, memoised per word: stemming is most of its tokenising time."""

    def __init__(self) -> None:
        from nltk.stem import porter  # NLTK takes seconds to import; only stemming needs it

        self.stem = functools.lru_cache(maxsize=1 << 16)(porter.PorterStemmer().stem)


@functools.cache
def _stemmer() -> _CachedStemmer:
    return _CachedStemmer()


@functools.lru_cache(maxsize=1 << 17)
def rouge_tokens(text: str, use_stemmer: bool) -> tuple[str, ...]:
    """rouge-score's DefaultTokenizer output, cached so several ROUGE types tokenise a text once."""
    return tuple(rouge_tokenize.tokenize(text, _stemmer() if use_stemmer else None))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of a longest common subsequence, bit-parallel over the positions of `b`."""
    if len(a) > len(b):
        a, b = b, a  # one Python step per token of the shorter sequence
    masks: dict[str, int] = {}
    for position, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(b)) - 1
    row = full  # a zero bit marks a position where the LCS length steps up
    for token in a:
        match = masks.get(token)
        if match:
            kept = row & match
            row = ((row + kept) | (row - kept)) & full
    return len(b) - row.bit_count()


def _lcs_positions(ref: Sequence[str], can: Sequence[str]) -> list[int]:
    """Positions in `ref` of one LCS, the one rouge-score's table read-out picks."""
    table = np.zeros((len(ref) + 1, len(can) + 1), dtype=np.int64)
    can_array = np.asarray(can, dtype=object)
    for i, token in enumerate(ref, start=1):
        # Row recurrence of the LCS table: a match extends the diagonal, otherwise the larger
        # neighbour; the running maximum supplies the left neighbour.
        candidate = np.where(can_array == token, table[i - 1, :-1] + 1, table[i - 1, 1:])
        table[i, 1:] = np.maximum.accumulate(candidate)
    positions: list[int] = []
    i, j = len(ref), len(can)
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            positions.append(i - 1)
            i, j = i - 1, j - 1
        elif table[i, j - 1] > table[i - 1, j]:
            j -= 1
        else:
            i -= 1
    return positions[::-1]


def _summary_lcs_hits(ref_sentences: list[tuple[str, ...]], can_sentences: list[tuple[str, ...]]) -> int:
    """Union-LCS hits of ROUGE-Lsum (Lin 2004, section 3.2), with each token counted at most as
    often as it occurs on both sides."""
    ref_left = Counter(token for sentence in ref_sentences for token in sentence)
    can_left = Counter(token for sentence in can_sentences for token in sentence)
    hits = 0
    for ref in ref_sentences:
        union = sorted(set().union(*(_lcs_positions(ref, can) for can in can_sentences)))
        for token in (ref[position] for position in union):
            if ref_left[token] > 0 and can_left[token] > 0:
                hits += 1
                ref_left[token] -= 1
                can_left[token] -= 1
    return hits


def _sentence_splitter(split_summaries: bool) -> Callable[[str], list[str]]:
    if not split_summaries:
        return lambda text: text.split("\n")
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab")
    except LookupError:
        raise HarnessError(
            "rougeLsum: split_summaries needs NLTK's punkt_tab sentence model; install it once with "
            "`python -m nltk.downloader punkt_tab`, or put newlines between sentences and leave "
            "split_summaries off"
        ) from None
    sent_tokenize: Callable[[str], list[str]] = nltk.sent_tokenize
    return sent_tokenize


@dataclass(frozen=True)
class Rouge:
    rouge_type: str
    use_stemmer: bool = False
    split_summaries: bool = False
    measure: str = "fmeasure"
    _split: Callable[[str], list[str]] = field(init=False, repr=False, compare=False)

    higher_is_better = True
    output_types = frozenset({"generate_until"})
    is_mean = False  # a mean, but reported with a bootstrap interval as rouge-score does

    def __post_init__(self) -> None:
        for key in ("use_stemmer", "split_summaries"):
            if not isinstance(getattr(self, key), bool):
                raise HarnessError(f"{self.rouge_type}: setting '{key}' must be true or false")
        if self.measure not in MEASURES:
            raise HarnessError(f"{self.rouge_type}: measure must be one of {', '.join(MEASURES)}")
        if self.split_summaries and self.rouge_type != "rougeLsum":
            raise HarnessError(f"{self.rouge_type}: split_summaries only applies to rougeLsum")
        # Resolved now, so a missing NLTK model fails before the model runs, not after.
        object.__setattr__(self, "_split", _sentence_splitter(self.split_summaries))

    @property
    def name(self) -> str:
        return self.rouge_type

    @property
    def statistic_names(self) -> tuple[str, ...]:
        return (self.measure, "count")

    def _sentences(self, text: str) -> list[tuple[str, ...]]:
        return [rouge_tokens(piece, self.use_stemmer) for piece in self._split(text) if piece]

    def _overlaps(self, predictions: list[str], targets: list[str]) -> tuple[np.ndarray, ...]:
        """(hits, prediction size, target size) per (prediction, target) unit."""
        if self.rouge_type == "rougeLsum":
            can = [self._sentences(text) for text in predictions]
            ref = [self._sentences(text) for text in targets]
            hits = [
                _summary_lcs_hits(r, c) if r and c and any(r) and any(c) else 0
                for r, c in zip(ref, can, strict=True)
            ]
            can_size = [sum(map(len, sentences)) for sentences in can]
            ref_size = [sum(map(len, sentences)) for sentences in ref]
            return np.asarray(hits, float), np.asarray(can_size, float), np.asarray(ref_size, float)
        can_tokens = [rouge_tokens(text, self.use_stemmer) for text in predictions]
        ref_tokens = [rouge_tokens(text, self.use_stemmer) for text in targets]
        if self.rouge_type == "rougeL":
            hits = [lcs_length(r, c) for r, c in zip(ref_tokens, can_tokens, strict=True)]
            return (
                np.asarray(hits, float),
                np.asarray([len(c) for c in can_tokens], float),
                np.asarray([len(r) for r in ref_tokens], float),
            )
        n = int(self.rouge_type.removeprefix("rouge"))
        units = len(predictions)
        sequences = [seq for pair in zip(can_tokens, ref_tokens, strict=True) for seq in pair]
        encoded = encode_tokens(sequences, np.repeat(np.arange(units), 2), np.tile([0, 1], units))
        hits_n = clipped_matches(encoded, units, n)[:, n - 1]
        # rouge-score divides by at least 1 n-gram.
        can_size = np.maximum(ngram_totals(encoded.lengths[0::2], n)[:, n - 1], 1.0)
        ref_size = np.maximum(ngram_totals(encoded.lengths[1::2], n)[:, n - 1], 1.0)
        return hits_n, can_size, ref_size

    def batch_statistics(self, outcomes: Sequence[SampleOutcome]) -> np.ndarray:
        owner: list[int] = []
        predictions: list[str] = []
        targets: list[str] = []
        for index, outcome in enumerate(outcomes):
            check_output_type(self, outcome)
            prediction = require(outcome.prediction, "prediction", self)
            for reference in outcome.references or (outcome.target,):
                owner.append(index)
                predictions.append(prediction)
                targets.append(reference)
        hits, can_size, ref_size = self._overlaps(predictions, targets)
        with np.errstate(divide="ignore", invalid="ignore"):
            # An empty side scores 0 (ROUGE-L/Lsum return early in rouge-score; for ROUGE-N hits=0).
            precision = np.where(can_size > 0, hits / can_size, 0.0)
            recall = np.where(ref_size > 0, hits / ref_size, 0.0)
            fmeasure = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        chosen = {"fmeasure": fmeasure, "precision": precision, "recall": recall}[self.measure]
        owners = np.asarray(owner)
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        best = np.maximum.reduceat(fmeasure, starts)
        first_best = np.minimum.reduceat(
            np.where(fmeasure == best[owners], np.arange(owners.size), owners.size), starts
        )
        return np.column_stack([chosen[first_best], np.ones(len(outcomes))])

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        return tuple(float(v) for v in self.batch_statistics([outcome])[0])

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return mean_of_first(totals)

    def signature(self) -> str:
        settings: dict[str, object] = {"use_stemmer": self.use_stemmer, "measure": self.measure}
        if self.rouge_type == "rougeLsum":
            settings["split_summaries"] = self.split_summaries
        libraries = ("rouge-score", "nltk") if self.use_stemmer or self.split_summaries else ("rouge-score",)
        return make_signature(self.name, {**settings, "references": "best_fmeasure"}, libraries)


def rouge1(*, use_stemmer: bool = False, measure: str = "fmeasure") -> Rouge:
    return Rouge("rouge1", use_stemmer=use_stemmer, measure=measure)


def rouge2(*, use_stemmer: bool = False, measure: str = "fmeasure") -> Rouge:
    return Rouge("rouge2", use_stemmer=use_stemmer, measure=measure)


def rouge_l(*, use_stemmer: bool = False, measure: str = "fmeasure") -> Rouge:
    return Rouge("rougeL", use_stemmer=use_stemmer, measure=measure)


def rouge_lsum(
    *, use_stemmer: bool = False, split_summaries: bool = False, measure: str = "fmeasure"
) -> Rouge:
    """Summary-level ROUGE-L: sentences are the text's lines, or NLTK's sentences with split_summaries."""
    return Rouge("rougeLsum", use_stemmer=use_stemmer, split_summaries=split_summaries, measure=measure)


METRICS.register("rouge1", rouge1)
METRICS.register("rouge2", rouge2)
METRICS.register("rougeL", rouge_l)
METRICS.register("rougeLsum", rouge_lsum)
