"""SQuAD-style token F1 and exact match with the standard answer normalisation.

Normalisation, as in the official SQuAD v1.1/v2.0 evaluation scripts: lowercase, drop ASCII
punctuation, drop the articles a/an/the, collapse whitespace. Token F1 follows v2.0: when either
side has no tokens (an unanswerable question, an empty prediction), F1 is 1 if both are empty and 0
otherwise. With several references the best one counts (`metric_max_over_ground_truths`).
Both are means of per-document values, so their standard error is the closed form.
"""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np

from harness.metrics.base import (
    METRICS,
    SampleOutcome,
    check_output_type,
    make_signature,
    mean_of_first,
    require,
)

__all__ = ["SquadExactMatch", "TokenF1", "normalize_answer", "token_f1_score"]

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def token_f1_score(prediction: str, reference: str) -> float:
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    shared = sum((Counter(predicted) & Counter(gold)).values())
    if shared == 0:
        return 0.0
    precision = 1.0 * shared / len(predicted)
    recall = 1.0 * shared / len(gold)
    return (2 * precision * recall) / (precision + recall)


class _SquadMetric:
    name = ""
    higher_is_better = True
    statistic_names: tuple[str, ...] = ()
    output_types = frozenset({"generate_until"})
    is_mean = True

    def one(self, prediction: str, reference: str) -> float:
        raise NotImplementedError

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        prediction: str = require(outcome.prediction, "prediction", self)
        references = outcome.references or (outcome.target,)
        return (max(self.one(prediction, reference) for reference in references), 1.0)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return mean_of_first(totals)

    def signature(self) -> str:
        return make_signature(self.name, {"normalization": "squad", "references": "max"})


class TokenF1(_SquadMetric):
    name = "token_f1"
    statistic_names = ("f1", "count")

    def one(self, prediction: str, reference: str) -> float:
        return token_f1_score(prediction, reference)


class SquadExactMatch(_SquadMetric):
    name = "squad_exact_match"
    statistic_names = ("match", "count")

    def one(self, prediction: str, reference: str) -> float:
        return float(normalize_answer(prediction) == normalize_answer(reference))


METRICS.register("token_f1", TokenF1)
METRICS.register("squad_exact_match", SquadExactMatch)
