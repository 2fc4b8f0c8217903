"""BLEU and TER with sacrebleu's tokenisers, options and numbers.

Per-document statistics are exactly sacrebleu's sufficient statistics (the lists its
`corpus_score` sums), so a corpus score computed from summed statistics equals
`sacrebleu.corpus_bleu` / `corpus_ter` on the same documents. Text preparation (lowercasing, the
tokenisers, TER's edit distance) is sacrebleu's own code; BLEU's n-gram matching is done
corpus-wide by `metrics._ngrams`, many times faster than sacrebleu's per-sentence Counters and
equal to them count for count.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from sacrebleu.metrics import BLEU as SacreBLEU
from sacrebleu.metrics import TER as SacreTER

from harness.errors import HarnessError
from harness.metrics._ngrams import clipped_matches, encode_tokens, ngram_totals
from harness.metrics.base import METRICS, SampleOutcome, generation_texts, make_signature, require_flag

__all__ = ["BLEU", "TER", "bleu", "ter"]

_SPM_TOKENIZERS = frozenset({"spm", "flores101", "flores200", "spBLEU-1K"})
_MECAB_TOKENIZERS = {"ja-mecab": "MeCab", "ko-mecab": "mecab_ko"}
# sacrebleu's floor for log(0) (`utils.my_log`): a precision of 0 makes BLEU exactly 0.
_LOG_ZERO = -9999999999.0


def _check_tokenizer(name: str) -> None:
    """Refuse, with a fix, tokenisers that would download a model or need a missing package."""
    if name not in SacreBLEU.TOKENIZERS:
        raise HarnessError(
            f"bleu: unknown tokenize '{name}'; choose one of {', '.join(SacreBLEU.TOKENIZERS)}"
        )
    if name in _SPM_TOKENIZERS:
        from sacrebleu.tokenizers.tokenizer_spm import SPM_MODELS
        from sacrebleu.utils import SACREBLEU_DIR

        model = os.path.join(SACREBLEU_DIR, "models", os.path.basename(SPM_MODELS[name]["url"]))
        if not os.path.exists(model):
            # sacrebleu would download it silently; metrics here never touch the network.
            raise HarnessError(
                f"bleu: tokenize '{name}' needs its SentencePiece model at {model}; fetch it once with "
                f"`sacrebleu --tokenize {name}` on a networked machine (or set $SACREBLEU to a folder "
                "that has it)"
            )
    module = _MECAB_TOKENIZERS.get(name)
    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError:
            raise HarnessError(
                f"bleu: tokenize '{name}' needs sacrebleu's extra: pip install 'sacrebleu[ja,ko]'"
            ) from None


def _closest(hyp_len: int, ref_lens: list[int]) -> int:
    """sacrebleu's closest reference length: the smallest difference, ties to the shorter one."""
    return min(ref_lens, key=lambda ref_len: (abs(hyp_len - ref_len), ref_len))


@dataclass(frozen=True)
class BLEU:
    """Corpus BLEU (Papineni et al., 2002) as computed by sacrebleu, 0-100."""

    lowercase: bool = False
    tokenize: str = SacreBLEU.TOKENIZER_DEFAULT
    smooth_method: str = "exp"
    smooth_value: float | None = None
    max_ngram_order: int = 4
    effective_order: bool = False
    _scorer: SacreBLEU = field(init=False, repr=False, compare=False)

    name = "bleu"
    higher_is_better = True
    output_types = frozenset({"generate_until"})
    is_mean = False

    def __post_init__(self) -> None:
        if self.smooth_method not in SacreBLEU.SMOOTH_DEFAULTS:
            raise HarnessError(
                f"bleu: unknown smooth_method '{self.smooth_method}'; "
                f"choose one of {', '.join(SacreBLEU.SMOOTH_DEFAULTS)}"
            )
        if not isinstance(self.max_ngram_order, int) or self.max_ngram_order < 1:
            raise HarnessError(
                f"bleu: max_ngram_order must be a positive integer, got {self.max_ngram_order!r}"
            )
        _check_tokenizer(self.tokenize)
        scorer = SacreBLEU(
            lowercase=self.lowercase,
            tokenize=self.tokenize,
            smooth_method=self.smooth_method,
            smooth_value=self.smooth_value,
            max_ngram_order=self.max_ngram_order,
            effective_order=self.effective_order,
        )
        object.__setattr__(self, "_scorer", scorer)

    @property
    def statistic_names(self) -> tuple[str, ...]:
        orders = range(1, self.max_ngram_order + 1)
        return ("sys_len", "ref_len", *(f"correct_{n}" for n in orders), *(f"total_{n}" for n in orders))

    def batch_statistics(self, outcomes: Sequence[SampleOutcome]) -> np.ndarray:
        hypotheses, references = generation_texts(self, outcomes)
        prepare = self._scorer._preprocess_segment  # lowercasing + rstrip + tokeniser, as sacrebleu
        token_lists: list[list[str]] = []
        unit: list[int] = []
        side: list[int] = []
        hyp_lengths: list[int] = []
        ref_lengths: list[list[int]] = []
        for index, (hypothesis, refs) in enumerate(zip(hypotheses, references, strict=True)):
            token_lists.append(prepare(hypothesis).split())
            unit.append(index)
            side.append(0)
            hyp_lengths.append(len(token_lists[-1]))
            lengths = []
            for slot, reference in enumerate(refs, start=1):
                tokens = prepare(reference).split()
                token_lists.append(tokens)
                unit.append(index)
                side.append(slot)
                lengths.append(len(tokens))
            ref_lengths.append(lengths)
        order = self.max_ngram_order
        correct = clipped_matches(encode_tokens(token_lists, unit, side), len(outcomes), order)
        hyp_len = np.asarray(hyp_lengths, dtype=np.int64)
        ref_len = [_closest(h, lengths) for h, lengths in zip(hyp_lengths, ref_lengths, strict=True)]
        return np.column_stack(
            [hyp_len, np.asarray(ref_len, np.float64), correct, ngram_totals(hyp_len, order)]
        ).astype(np.float64)

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        return tuple(float(v) for v in self.batch_statistics([outcome])[0])

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        """sacrebleu's `BLEU.compute_bleu`, vectorised over leading axes."""
        totals = np.asarray(totals, dtype=np.float64)
        order = self.max_ngram_order
        sys_len, ref_len = totals[..., 0], totals[..., 1]
        correct = totals[..., 2 : 2 + order].copy()
        total = totals[..., 2 + order : 2 + 2 * order].copy()
        default = SacreBLEU.SMOOTH_DEFAULTS[self.smooth_method]
        # Only floor and add-k use a value, and both have a default.
        smooth_value = self.smooth_value if self.smooth_value is not None else float(default or 0.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            brevity = np.where(
                sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0), 1.0
            )
            any_match = (correct > 0).any(axis=-1)  # sacrebleu returns 0 early when nothing matched
            log_sum = np.zeros(sys_len.shape)
            effective = np.full(sys_len.shape, order, dtype=np.float64)
            alive = np.ones(sys_len.shape, dtype=bool)  # no order with zero n-grams seen yet
            smooth_mteval = np.ones(sys_len.shape)
            for n in range(order):
                if self.smooth_method == "add-k" and n > 0:
                    correct[..., n] += smooth_value
                    total[..., n] += smooth_value
                alive &= total[..., n] != 0  # sacrebleu stops at the first empty order
                if self.effective_order:
                    effective = np.where(alive, n + 1, effective)
                zero = alive & (correct[..., n] == 0)
                precision = np.where(alive, 100.0 * correct[..., n] / total[..., n], 0.0)
                if self.smooth_method == "exp":
                    smooth_mteval = np.where(zero, smooth_mteval * 2, smooth_mteval)
                    precision = np.where(zero, 100.0 / (smooth_mteval * total[..., n]), precision)
                elif self.smooth_method == "floor":
                    precision = np.where(zero, 100.0 * smooth_value / total[..., n], precision)
                log_p = np.where(precision == 0.0, _LOG_ZERO, np.log(np.where(precision > 0, precision, 1.0)))
                # Orders past the effective order are left out of the mean, as in sacrebleu.
                log_sum = log_sum + np.where(n < effective, log_p, 0.0)
            score = brevity * np.exp(log_sum / effective)
        return np.asarray(np.where(any_match, score, 0.0), dtype=np.float64)

    def signature(self) -> str:
        settings = {
            "lowercase": self.lowercase,
            "tokenize": self.tokenize,
            "smooth_method": self.smooth_method,
            "smooth_value": self.smooth_value,
            "max_ngram_order": self.max_ngram_order,
            "effective_order": self.effective_order,
        }
        return make_signature(self.name, settings, libraries=("sacrebleu",))


@dataclass(frozen=True)
class TER:
    """Translation edit rate (Snover et al., 2006) as sacrebleu computes it, 0-100, lower is better."""

    normalized: bool = False
    no_punct: bool = False
    asian_support: bool = False
    case_sensitive: bool = False
    _scorer: SacreTER = field(init=False, repr=False, compare=False)

    name = "ter"
    higher_is_better = False
    statistic_names = ("edits", "ref_length")
    output_types = frozenset({"generate_until"})
    is_mean = False

    def __post_init__(self) -> None:
        scorer = SacreTER(
            normalized=self.normalized,
            no_punct=self.no_punct,
            asian_support=self.asian_support,
            case_sensitive=self.case_sensitive,
        )
        object.__setattr__(self, "_scorer", scorer)

    def batch_statistics(self, outcomes: Sequence[SampleOutcome]) -> np.ndarray:
        hypotheses, references = generation_texts(self, outcomes)
        width = max(len(refs) for refs in references)
        # sacrebleu's reference streams; None pads documents that have fewer references.
        streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
        stats = self._scorer._extract_corpus_statistics(hypotheses, cast(Sequence[Sequence[str]], streams))
        return np.asarray(stats, dtype=np.float64).reshape(len(outcomes), 2)

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        return tuple(float(v) for v in self.batch_statistics([outcome])[0])

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        edits, length = totals[..., 0], totals[..., 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(length > 0, edits / length, np.where(edits > 0, 1.0, 0.0))
        return np.asarray(100 * rate, dtype=np.float64)

    def signature(self) -> str:
        settings = {
            "normalized": self.normalized,
            "no_punct": self.no_punct,
            "asian_support": self.asian_support,
            "case_sensitive": self.case_sensitive,
        }
        return make_signature(self.name, settings, libraries=("sacrebleu",))


def bleu(
    *,
    lowercase: bool = False,
    tokenize: str | None = None,
    trg_lang: str = "",
    smooth_method: str = "exp",
    smooth_value: float | None = None,
    max_ngram_order: int = 4,
    effective_order: bool = False,
) -> BLEU:
    """sacrebleu's BLEU options; `trg_lang` only picks the default tokeniser (zh, ja-mecab, ko-mecab)."""
    if tokenize is None:
        tokenize = SacreBLEU._TOKENIZER_MAP.get(trg_lang, SacreBLEU.TOKENIZER_DEFAULT)
    if smooth_value is not None and (
        isinstance(smooth_value, bool) or not isinstance(smooth_value, int | float)
    ):
        raise HarnessError(f"bleu: smooth_value must be a number, got {smooth_value!r}")
    return BLEU(
        lowercase=require_flag("bleu", "lowercase", lowercase),
        tokenize=str(tokenize),
        smooth_method=str(smooth_method),
        smooth_value=None if smooth_value is None else float(smooth_value),
        max_ngram_order=max_ngram_order,
        effective_order=require_flag("bleu", "effective_order", effective_order),
    )


def ter(
    *,
    normalized: bool = False,
    no_punct: bool = False,
    asian_support: bool = False,
    case_sensitive: bool = False,
) -> TER:
    return TER(
        require_flag("ter", "normalized", normalized),
        require_flag("ter", "no_punct", no_punct),
        require_flag("ter", "asian_support", asian_support),
        require_flag("ter", "case_sensitive", case_sensitive),
    )


METRICS.register("bleu", bleu)
METRICS.register("ter", ter)
