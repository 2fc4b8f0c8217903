"""Metric protocol, per-sample outcomes, the metric registry and defaults.

Every metric follows sacrebleu's pattern: each scored document yields a fixed-length vector of
additive statistics, and the corpus value is a function of those statistics summed over documents.
Because the only corpus-level operation is a sum, bootstrap resampling and paired comparisons can
be written once, generically, as matrix products over a count matrix (see `metrics.uncertainty`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.errors import HarnessError
from harness.registry import Registry
from harness.signatures import make_signature as make_signature  # re-exported: metrics sign with it

OUTPUT_TYPES = frozenset({"loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until"})
EVALUATE_PREFIX = "evaluate:"


@dataclass(frozen=True)
class SampleOutcome:
    """Everything a metric may need about one scored document (after filters have been applied)."""

    output_type: str  # "loglikelihood" | "multiple_choice" | "loglikelihood_rolling" | "generate_until"
    target: str = ""  # target text (rolling: the scored text)
    references: tuple[str, ...] = ()  # generation references; empty means "just `target`"
    prediction: str | None = None  # generated text
    gold: int | None = None  # multiple_choice: index of the correct choice
    choices: tuple[str, ...] = ()  # multiple_choice: choice strings WITHOUT the target delimiter
    choice_logprobs: tuple[float, ...] = ()
    logprob: float | None = None  # loglikelihood / rolling total logprob
    is_greedy: bool | None = None
    num_tokens: int | None = None  # rolling: tokens scored
    # A task's own process_results (lm-eval's hook): metric name -> this document's item.
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.output_type not in OUTPUT_TYPES:
            expected = ", ".join(sorted(OUTPUT_TYPES))
            raise ValueError(f"unknown output_type {self.output_type!r}; expected one of: {expected}")


@runtime_checkable
class Metric(Protocol):
    # Read-only members: metrics are immutable, and plain class attributes satisfy them.
    @property
    def name(self) -> str: ...

    @property
    def higher_is_better(self) -> bool: ...

    @property
    def statistic_names(self) -> tuple[str, ...]: ...

    @property
    def output_types(self) -> frozenset[str]: ...

    @property
    def is_mean(self) -> bool:
        """True when the value is the mean of the first statistic (the second counts samples);
        the standard error is then lm-eval's closed form instead of a bootstrap."""
        ...

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        """The additive statistics of one document, in `statistic_names` order."""
        ...

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        """Corpus value(s) from summed statistics: shape (..., k) -> (...), fully vectorised."""
        ...

    def signature(self) -> str:
        """Name, every setting and the harness version, so reported numbers can be reproduced."""
        ...


@runtime_checkable
class BatchMetric(Metric, Protocol):
    """A metric that computes the statistics of many documents faster together than one by one
    (corpus-wide tokenisation and n-gram counting). Rows equal `sample_statistics` of each outcome."""

    def batch_statistics(self, outcomes: Sequence[SampleOutcome]) -> np.ndarray: ...


@dataclass(frozen=True)
class Score:
    metric: str
    value: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    higher_is_better: bool
    signature: str


METRICS: Registry[Callable[..., Metric]] = Registry("metric", "harness.metrics")

# lm-eval 0.4.13's metrics for a task whose YAML has no metric_list (ConfigurableTask.__init__ via
# DEFAULT_METRIC_REGISTRY), plus token_perplexity, which adapters can give us for free.
_DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "loglikelihood": ("perplexity", "acc"),
    "multiple_choice": ("acc", "acc_norm"),
    "loglikelihood_rolling": ("word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity"),
    "generate_until": ("exact_match",),
}


def default_metrics(output_type: str) -> list[str]:
    if output_type not in _DEFAULT_METRICS:
        raise HarnessError(f"unknown output_type '{output_type}'; expected one of {sorted(_DEFAULT_METRICS)}")
    return list(_DEFAULT_METRICS[output_type])


# Score rows that summarise subsets of a task's samples (fairness gaps, per-group values) rather than
# one per-sample statistic: they cannot be paired document by document.
DERIVED_METRIC_PREFIXES = ("fairness/", "group/")


def is_derived_metric(name: str) -> bool:
    return name.startswith(DERIVED_METRIC_PREFIXES)


def statistics_matrix(metric: Metric, outcomes: Iterable[SampleOutcome]) -> np.ndarray:
    """Per-document statistics stacked into shape (n, k), the input of `metrics.uncertainty.score`."""
    if isinstance(metric, BatchMetric):
        listed = list(outcomes)
        if listed:
            return np.asarray(metric.batch_statistics(listed), dtype=np.float64)
        return np.zeros((0, len(metric.statistic_names)))
    rows = [metric.sample_statistics(outcome) for outcome in outcomes]
    if not rows:
        return np.zeros((0, len(metric.statistic_names)))
    return np.asarray(rows, dtype=np.float64)


def check_output_type(metric: Metric, outcome: SampleOutcome) -> None:
    """A task YAML can list any metric, so a mismatch is a user error worth a clear message."""
    if outcome.output_type not in metric.output_types:
        raise HarnessError(
            f"metric '{metric.name}' does not apply to output_type '{outcome.output_type}' "
            f"(it applies to: {', '.join(sorted(metric.output_types))})"
        )


def require(value: Any, field_name: str, metric: Metric) -> Any:
    """Missing fields are a bug in the code that built the outcome, not a user error."""
    if value is None:
        raise ValueError(f"metric '{metric.name}' needs SampleOutcome.{field_name}")
    return value


def require_flag(metric_name: str, key: str, value: object) -> bool:
    # A YAML typo such as `lowercase: "false"` would be truthy; refuse anything but a boolean.
    if not isinstance(value, bool):
        raise HarnessError(f"{metric_name}: setting '{key}' must be true or false, got {value!r}")
    return value


def generation_texts(
    metric: Metric, outcomes: Sequence[SampleOutcome]
) -> tuple[list[str], list[tuple[str, ...]]]:
    """Predictions and reference tuples of generation outcomes (the target when no references)."""
    predictions, references = [], []
    for outcome in outcomes:
        check_output_type(metric, outcome)
        predictions.append(require(outcome.prediction, "prediction", metric))
        references.append(outcome.references or (outcome.target,))
    return predictions, references


def mean_of_first(totals: np.ndarray) -> np.ndarray:
    """Aggregate of (value, 1) statistics: the mean of the per-sample value."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(totals[..., 0] / totals[..., 1], dtype=np.float64)
