"""Perplexities of whole texts (loglikelihood_rolling): word, byte, token, and bits per byte.

lm-eval emits (logprob, units) pairs per document and aggregates them as
sum(logprob) / sum(units) ("weighted_mean"), i.e. a ratio of sums, not a mean of ratios: a long
document weighs more. That is exactly an additive-statistics metric.
"""

from __future__ import annotations

import math
import re

import numpy as np

from harness.metrics.base import METRICS, SampleOutcome, check_output_type, make_signature, require

_WHITESPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    # lm-eval's Task.count_words: the number of pieces after splitting on whitespace runs, so
    # leading/trailing whitespace adds an (empty) word and "" counts as one word. Kept as is so
    # word perplexities stay comparable with lm-eval's.
    return len(_WHITESPACE.split(text))


def count_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _ratio(totals: np.ndarray) -> np.ndarray:
    # Same operation order as lm-eval's weighted_mean: sum(logprob) / sum(units).
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(totals[..., 0] / totals[..., 1], dtype=np.float64)


class _RollingMetric:
    """Shared plumbing; subclasses set the unit counter and the transform of the mean logprob."""

    name = ""
    statistic_names: tuple[str, ...] = ("logprob", "units")
    higher_is_better = False
    output_types = frozenset({"loglikelihood_rolling"})
    is_mean = False  # a ratio of sums: its uncertainty comes from the bootstrap

    def units(self, outcome: SampleOutcome) -> float:
        raise NotImplementedError

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        return (float(require(outcome.logprob, "logprob", self)), float(self.units(outcome)))

    def transform(self, mean_logprob: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(np.exp(-mean_logprob), dtype=np.float64)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return self.transform(_ratio(totals))

    def signature(self) -> str:
        return make_signature(self.name, {"units": self.statistic_names[1]})


class WordPerplexity(_RollingMetric):
    name = "word_perplexity"
    statistic_names = ("logprob", "words")

    def units(self, outcome: SampleOutcome) -> float:
        return count_words(outcome.target)


class BytePerplexity(_RollingMetric):
    name = "byte_perplexity"
    statistic_names = ("logprob", "utf8_bytes")

    def units(self, outcome: SampleOutcome) -> float:
        return count_bytes(outcome.target)


class BitsPerByte(_RollingMetric):
    name = "bits_per_byte"
    statistic_names = ("logprob", "utf8_bytes")

    def units(self, outcome: SampleOutcome) -> float:
        return count_bytes(outcome.target)

    def transform(self, mean_logprob: np.ndarray) -> np.ndarray:
        # lm-eval: -weighted_mean / ln 2 (nats per byte -> bits per byte)
        return np.asarray(-mean_logprob / math.log(2), dtype=np.float64)


class TokenPerplexity(_RollingMetric):
    """Not in lm-eval: depends on the tokenizer, so only comparable between same-tokenizer models."""

    name = "token_perplexity"
    statistic_names = ("logprob", "tokens")

    def units(self, outcome: SampleOutcome) -> float:
        return float(require(outcome.num_tokens, "num_tokens", self))


METRICS.register("word_perplexity", WordPerplexity)
METRICS.register("byte_perplexity", BytePerplexity)
METRICS.register("bits_per_byte", BitsPerByte)
METRICS.register("token_perplexity", TokenPerplexity)

__all__ = [
    "BitsPerByte",
    "BytePerplexity",
    "TokenPerplexity",
    "WordPerplexity",
    "count_bytes",
    "count_words",
]
