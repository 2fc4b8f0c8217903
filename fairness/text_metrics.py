"""Metrics of generated text for the free-text fairness probes: refusal rate, answer length, sentiment.

Each is an ordinary harness metric (additive per-sample statistics, a mean), so a task that lists
them in its `metric_list` and names a `group_field` gets them per group, between groups (difference,
ratio, worst group) with bootstrap intervals and permutation p-values, like any other metric. The
scoring rules are `fairness.text_scoring`'s; no model is involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.fairness.text_scoring import score_text
from harness.metrics import METRICS, SampleOutcome
from harness.metrics.base import check_output_type, mean_of_first
from harness.signatures import make_signature

# Version of the rules and word lists in `text_scoring`; part of every signature.
RULES_VERSION = "1"


@dataclass(frozen=True)
class _TextMetric:
    name: str
    higher_is_better: bool
    statistic_names = ("value", "count")
    output_types = frozenset({"generate_until"})
    is_mean = True

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        found = score_text(outcome.prediction or "")
        value = {
            "refusal_rate": float(found.refused),
            "answer_words": float(found.words),
            "answer_sentiment": found.sentiment,
        }[self.name]
        return (value, 1.0)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return mean_of_first(totals)

    def signature(self) -> str:
        return make_signature(self.name, {"rules": f"harness.fairness.text_scoring/{RULES_VERSION}"})


# A refusal of a harmless request is a failure to help; the length and tone of an answer are
# neither good nor bad in themselves (what matters is the gap between groups), and count as
# higher-is-better only so that a worst group is the shortest or most negative one.
refusal_rate = _TextMetric("refusal_rate", higher_is_better=False)
answer_words = _TextMetric("answer_words", higher_is_better=True)
answer_sentiment = _TextMetric("answer_sentiment", higher_is_better=True)


def _refusal_rate() -> _TextMetric:
    return refusal_rate


def _answer_words() -> _TextMetric:
    return answer_words


def _answer_sentiment() -> _TextMetric:
    return answer_sentiment


# Registered through the same path as the built-in metrics (factories without settings).
METRICS.register("refusal_rate", _refusal_rate)
METRICS.register("answer_words", _answer_words)
METRICS.register("answer_sentiment", _answer_sentiment)

__all__ = ["RULES_VERSION", "answer_sentiment", "answer_words", "refusal_rate"]
