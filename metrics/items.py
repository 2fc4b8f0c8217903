"""Metrics over items that a task computes itself, and metrics named after a response filter.

lm-eval tasks may score documents with their own `process_results` hook, which returns one item per metric
(a number, or a (logprob, units) pair); the metric's `aggregation` turns the items into the corpus value.
The aggregations kept here are the ones that are sums in disguise, so these metrics stay additive like every
other metric: `mean` (items, count), `perplexity` (logprob, count), `weighted_perplexity` and
`bits_per_byte` (logprob, units).

A task with several response filters (lm-eval's `filter_list`) scores every metric once per filter;
`FilteredMetric` carries lm-eval's `metric,filter` name for the non-default filters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.metric_names import filtered_metric_name
from harness.metrics.base import Metric, SampleOutcome, make_signature, mean_of_first

__all__ = [
    "ITEM_AGGREGATIONS",
    "FilteredMetric",
    "ItemMetric",
    "default_item_aggregation",
    "filtered_metric_name",
]

ITEM_AGGREGATIONS = ("mean", "perplexity", "weighted_perplexity", "bits_per_byte")
# lm-eval's default aggregation of a metric that names no `aggregation` (its metric registry).
_DEFAULT_AGGREGATIONS = {
    "perplexity": "perplexity",
    "word_perplexity": "weighted_perplexity",
    "byte_perplexity": "weighted_perplexity",
    "bits_per_byte": "bits_per_byte",
}


def default_item_aggregation(metric_name: str) -> str:
    return _DEFAULT_AGGREGATIONS.get(metric_name, "mean")


@dataclass(frozen=True)
class ItemMetric:
    """A metric whose per-document items come from the task's `process_results`."""

    name: str
    aggregation: str = "mean"
    higher_is_better: bool = True
    output_types: frozenset[str] = frozenset(
        {"loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until"}
    )

    def __post_init__(self) -> None:
        if self.aggregation not in ITEM_AGGREGATIONS:
            raise HarnessError(
                f"metric '{self.name}': aggregation '{self.aggregation}' over process_results items is not "
                f"supported (supported: {', '.join(ITEM_AGGREGATIONS)})"
            )

    @property
    def statistic_names(self) -> tuple[str, ...]:
        return ("value", "count") if self.aggregation in ("mean", "perplexity") else ("logprob", "units")

    @property
    def is_mean(self) -> bool:
        return self.aggregation == "mean"

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        if self.name not in outcome.values:
            raise HarnessError(f"process_results gave no '{self.name}' for a document")
        item = outcome.values[self.name]
        if self.aggregation in ("mean", "perplexity"):
            return (_number(self.name, item), 1.0)
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise HarnessError(f"metric '{self.name}': {self.aggregation} needs (logprob, units) items")
        return (_number(self.name, item[0]), _number(self.name, item[1]))

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        if self.aggregation == "mean":
            return mean_of_first(totals)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = totals[..., 0] / totals[..., 1]
            if self.aggregation == "bits_per_byte":
                return np.asarray(-ratio / math.log(2), dtype=np.float64)
            return np.asarray(np.exp(-ratio), dtype=np.float64)

    def signature(self) -> str:
        return make_signature(self.name, {"aggregation": self.aggregation, "items": "process_results"})


def _number(name: str, item: Any) -> float:
    if isinstance(item, bool | int | float | np.integer | np.floating):
        return float(item)
    raise HarnessError(f"metric '{name}': process_results gave {type(item).__name__}, not a number")


@dataclass(frozen=True)
class FilteredMetric:
    """`inner` scored on the responses of one filter pipeline, under lm-eval's `metric,filter` name."""

    inner: Metric
    filter_name: str

    @property
    def name(self) -> str:
        return filtered_metric_name(self.inner.name, self.filter_name)

    @property
    def higher_is_better(self) -> bool:
        return self.inner.higher_is_better

    @property
    def statistic_names(self) -> tuple[str, ...]:
        return self.inner.statistic_names

    @property
    def output_types(self) -> frozenset[str]:
        return self.inner.output_types

    @property
    def is_mean(self) -> bool:
        return self.inner.is_mean

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        return self.inner.sample_statistics(outcome)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return self.inner.aggregate(totals)

    def signature(self) -> str:
        return f"{self.inner.signature()}|filter:{self.filter_name}"
