"""chrF (Popović, 2015) and chrF++ (Popović, 2017) with sacrebleu's options and numbers.

Per-document statistics are sacrebleu's ([hypothesis, reference, match] counts per character and
word n-gram order, of the reference with the best sentence-level chrF), so corpus scores from summed
statistics equal `sacrebleu.corpus_chrf`. Lowercasing and chrF++'s punctuation splitting are
sacrebleu's own code; n-gram matching is done corpus-wide by `metrics._ngrams`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sacrebleu.metrics import CHRF as SacreCHRF

from harness.errors import HarnessError
from harness.metrics._ngrams import clipped_matches, encode_chars, encode_tokens, ngram_totals
from harness.metrics.base import METRICS, SampleOutcome, generation_texts, make_signature, require_flag

__all__ = ["CHRF", "chrf", "chrf_plus_plus"]


def _chrf_score(stats: np.ndarray, order: int, beta: float, eps_smoothing: bool) -> np.ndarray:
    """sacrebleu's `CHRF._compute_f_score`, vectorised; same operation order, so the same floats."""
    eps = 1e-16
    factor = beta**2
    shape = stats.shape[:-1]
    score = np.zeros(shape)
    avg_prec = np.zeros(shape)
    avg_rec = np.zeros(shape)
    effective = np.zeros(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(order):
            n_hyp, n_ref, n_match = stats[..., 3 * i], stats[..., 3 * i + 1], stats[..., 3 * i + 2]
            prec = np.where(n_hyp > 0, n_match / n_hyp, eps)
            rec = np.where(n_ref > 0, n_match / n_ref, eps)
            denom = factor * prec + rec
            score = score + np.where(denom > 0, (1 + factor) * prec * rec / denom, eps)
            both = (n_hyp > 0) & (n_ref > 0)
            avg_prec = np.where(both, avg_prec + prec, avg_prec)
            avg_rec = np.where(both, avg_rec + rec, avg_rec)
            effective = effective + both
        if eps_smoothing:
            return np.asarray(100 * score / order, dtype=np.float64)
        avg_prec = np.where(effective > 0, avg_prec / effective, 0.0)
        avg_rec = np.where(effective > 0, avg_rec / effective, 0.0)
        f_score = (1 + factor) * avg_prec * avg_rec / ((factor * avg_prec) + avg_rec)
        return np.asarray(np.where(avg_prec + avg_rec != 0, 100 * f_score, 0.0), dtype=np.float64)


@dataclass(frozen=True)
class CHRF:
    """chrF (Popović, 2015) and, with word_order 2, chrF++ (Popović, 2017), as sacrebleu, 0-100."""

    char_order: int = 6
    word_order: int = 0
    beta: int = 2
    lowercase: bool = False
    whitespace: bool = False
    eps_smoothing: bool = False
    name: str = "chrf"
    _scorer: SacreCHRF = field(init=False, repr=False, compare=False)

    higher_is_better = True
    output_types = frozenset({"generate_until"})
    is_mean = False

    def __post_init__(self) -> None:
        for key in ("char_order", "word_order", "beta"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise HarnessError(f"{self.name}: {key} must be a non-negative integer, got {value!r}")
        if self.char_order + self.word_order == 0:
            raise HarnessError(f"{self.name}: char_order and word_order cannot both be 0")
        scorer = SacreCHRF(
            char_order=self.char_order,
            word_order=self.word_order,
            beta=self.beta,
            lowercase=self.lowercase,
            whitespace=self.whitespace,
            eps_smoothing=self.eps_smoothing,
        )
        object.__setattr__(self, "_scorer", scorer)

    @property
    def statistic_names(self) -> tuple[str, ...]:
        orders = [f"char{n}" for n in range(1, self.char_order + 1)]
        orders += [f"word{n}" for n in range(1, self.word_order + 1)]
        return tuple(f"{order}_{kind}" for order in orders for kind in ("hyp", "ref", "match"))

    def _order_stats(
        self, corpus_hyp: list[Any], corpus_ref: list[Any], chars: bool, order: int
    ) -> np.ndarray:
        """(units, order, 3) statistics of one kind of n-gram for (hypothesis, reference) units."""
        units = len(corpus_hyp)
        sequences = [seq for pair in zip(corpus_hyp, corpus_ref, strict=True) for seq in pair]
        unit = np.repeat(np.arange(units), 2)
        side = np.tile([0, 1], units)
        encoded = encode_chars(sequences, unit, side) if chars else encode_tokens(sequences, unit, side)
        match = clipped_matches(encoded, units, order)
        hyp = ngram_totals(encoded.lengths[0::2], order)
        ref = ngram_totals(encoded.lengths[1::2], order)
        hyp = np.where(ref > 0, hyp, 0.0)  # sacrebleu counts no hypothesis n-grams without reference ones
        return np.stack([hyp, ref, match], axis=-1)

    def batch_statistics(self, outcomes: Sequence[SampleOutcome]) -> np.ndarray:
        hypotheses, references = generation_texts(self, outcomes)
        prepare = self._scorer._preprocess_segment
        owner: list[int] = []  # the document of each (hypothesis, reference) unit
        unit_hyp: list[str] = []
        unit_ref: list[str] = []
        for index, (hypothesis, refs) in enumerate(zip(hypotheses, references, strict=True)):
            prepared = prepare(hypothesis)
            for reference in refs:
                owner.append(index)
                unit_hyp.append(prepared)
                unit_ref.append(prepare(reference))
        parts = []
        if self.char_order:
            squeeze = (lambda text: text) if self.whitespace else (lambda text: "".join(text.split()))
            hyp_chars = [squeeze(text) for text in unit_hyp]
            ref_chars = [squeeze(text) for text in unit_ref]
            parts.append(self._order_stats(hyp_chars, ref_chars, True, self.char_order))
        if self.word_order:
            words = self._scorer._remove_punctuation  # sacrebleu's chrF++ word splitting
            hyp_words = [words(text) for text in unit_hyp]
            ref_words = [words(text) for text in unit_ref]
            parts.append(self._order_stats(hyp_words, ref_words, False, self.word_order))
        stats = np.concatenate(parts, axis=1).reshape(len(owner), -1)
        # Per document, the reference with the best sentence-level chrF (the first on ties).
        scores = _chrf_score(stats, self.char_order + self.word_order, self.beta, self.eps_smoothing)
        owners = np.asarray(owner)
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        best = np.maximum.reduceat(scores, starts)
        candidates = np.where(scores == best[owners], np.arange(len(owners)), len(owners))
        return stats[np.minimum.reduceat(candidates, starts)]

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        return tuple(float(v) for v in self.batch_statistics([outcome])[0])

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        order = self.char_order + self.word_order
        return _chrf_score(np.asarray(totals, dtype=np.float64), order, self.beta, self.eps_smoothing)

    def signature(self) -> str:
        settings = {
            "char_order": self.char_order,
            "word_order": self.word_order,
            "beta": self.beta,
            "lowercase": self.lowercase,
            "whitespace": self.whitespace,
            "eps_smoothing": self.eps_smoothing,
        }
        return make_signature(self.name, settings, libraries=("sacrebleu",))


def _checked(
    name: str,
    char_order: int,
    word_order: int,
    beta: int,
    lowercase: bool,
    whitespace: bool,
    eps_smoothing: bool,
) -> CHRF:
    """The two registered names differ only in their default word order; flags are validated the same."""
    return CHRF(
        char_order,
        word_order,
        beta,
        require_flag(name, "lowercase", lowercase),
        require_flag(name, "whitespace", whitespace),
        require_flag(name, "eps_smoothing", eps_smoothing),
        name=name,
    )


def chrf(
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    lowercase: bool = False,
    whitespace: bool = False,
    eps_smoothing: bool = False,
) -> CHRF:
    return _checked("chrf", char_order, word_order, beta, lowercase, whitespace, eps_smoothing)


def chrf_plus_plus(
    *,
    char_order: int = 6,
    word_order: int = 2,
    beta: int = 2,
    lowercase: bool = False,
    whitespace: bool = False,
    eps_smoothing: bool = False,
) -> CHRF:
    """chrF++: chrF with word unigrams and bigrams (lm-eval's `chrf++`)."""
    return _checked("chrf++", char_order, word_order, beta, lowercase, whitespace, eps_smoothing)


METRICS.register("chrf", chrf)
METRICS.register("chrf++", chrf_plus_plus)
