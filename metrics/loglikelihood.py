"""Metrics over loglikelihood and multiple-choice outcomes: perplexity, acc and acc_norm.

Each matches lm-eval 0.4.13 (`ConfigurableTask.process_results` plus the aggregation registered
for the metric) for the same per-sample inputs.
"""

from __future__ import annotations

import numpy as np

from harness.metrics.base import (
    METRICS,
    SampleOutcome,
    check_output_type,
    make_signature,
    mean_of_first,
    require,
)


class Perplexity:
    """exp(-mean logprob) of single continuations, lm-eval's `perplexity` aggregation."""

    name = "perplexity"
    higher_is_better = False
    statistic_names = ("logprob", "count")
    output_types = frozenset({"loglikelihood"})
    # The value is exp(-mean), not a mean, so its uncertainty comes from the bootstrap
    # (lm-eval bootstraps `perplexity` too).
    is_mean = False

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        return (float(require(outcome.logprob, "logprob", self)), 1.0)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.asarray(np.exp(-(totals[..., 0] / totals[..., 1])), dtype=np.float64)

    def signature(self) -> str:
        return make_signature(self.name)


def _argmax(scores: np.ndarray) -> int:
    # np.argmax returns the first maximum, so ties go to the earliest choice, and a NaN (0/0 from
    # an empty choice string in acc_norm) wins outright: exactly what lm-eval does.
    return int(np.argmax(scores))


def _mc_inputs(metric: object, outcome: SampleOutcome) -> tuple[np.ndarray, int]:
    logprobs = np.asarray(outcome.choice_logprobs, dtype=np.float64)
    if logprobs.size == 0:
        raise ValueError(f"metric '{getattr(metric, 'name', metric)}' needs SampleOutcome.choice_logprobs")
    if outcome.gold is None:
        raise ValueError(f"metric '{getattr(metric, 'name', metric)}' needs SampleOutcome.gold")
    return logprobs, outcome.gold


class Accuracy:
    """loglikelihood: the continuation is the greedy one; multiple_choice: argmax choice is gold;
    generate_until (classification by generation): the generated text is the target label, both
    without surrounding whitespace (as the classification metrics compare labels)."""

    name = "acc"
    higher_is_better = True
    statistic_names = ("correct", "count")
    output_types = frozenset({"loglikelihood", "multiple_choice", "generate_until"})
    is_mean = True

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        if outcome.output_type == "loglikelihood":
            return (float(int(require(outcome.is_greedy, "is_greedy", self))), 1.0)
        if outcome.output_type == "generate_until":
            prediction: str = require(outcome.prediction, "prediction", self)
            return (1.0 if prediction.strip() == outcome.target.strip() else 0.0, 1.0)
        logprobs, gold = _mc_inputs(self, outcome)
        # lm-eval maps an out-of-range gold to -100 and scores 0; argmax can never equal either.
        return (1.0 if _argmax(logprobs) == gold else 0.0, 1.0)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return mean_of_first(totals)

    def signature(self) -> str:
        return make_signature(self.name)


class NormalizedAccuracy:
    """Argmax of logprob / character length of each choice.

    lm-eval divides by `len(choice)` of the strings from `doc_to_choice`, i.e. WITHOUT the target
    delimiter (" ") that is prepended to the continuation that is actually scored, and counts
    Unicode code points, not bytes or tokens.
    """

    name = "acc_norm"
    higher_is_better = True
    statistic_names = ("correct", "count")
    output_types = frozenset({"multiple_choice"})
    is_mean = True

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        logprobs, gold = _mc_inputs(self, outcome)
        if len(outcome.choices) != logprobs.size:
            raise ValueError(
                f"metric '{self.name}' got {len(outcome.choices)} choices for {logprobs.size} logprobs"
            )
        lengths = np.asarray([float(len(choice)) for choice in outcome.choices])
        with np.errstate(divide="ignore", invalid="ignore"):  # empty choice: same inf/NaN as lm-eval
            normalised = logprobs / lengths
        return (1.0 if _argmax(normalised) == gold else 0.0, 1.0)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return mean_of_first(totals)

    def signature(self) -> str:
        return make_signature(self.name, {"length": "chars", "delimiter": "excluded"})


METRICS.register("perplexity", Perplexity)
METRICS.register("acc", Accuracy)
METRICS.register("acc_norm", NormalizedAccuracy)

__all__ = ["Accuracy", "NormalizedAccuracy", "Perplexity"]
