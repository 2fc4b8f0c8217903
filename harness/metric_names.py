"""Metric names with a response filter: lm-eval's `metric,filter` keys, in one place.

A task with several response filters reports each metric once per filter. The default filter ("none") keeps
the plain metric name, as harness always stored it; any other filter is named lm-eval's way, `metric,filter`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_FILTER", "filtered_metric_name", "lm_eval_key", "split_metric_name"]

DEFAULT_FILTER = "none"


def filtered_metric_name(metric_name: str, filter_name: str) -> str:
    return metric_name if filter_name == DEFAULT_FILTER else f"{metric_name},{filter_name}"


def split_metric_name(name: str) -> tuple[str, str]:
    """(metric, filter) of a stored metric name: the inverse of `filtered_metric_name`."""
    metric, separator, filter_name = name.partition(",")
    return (metric, filter_name) if separator else (name, DEFAULT_FILTER)


def lm_eval_key(name: str) -> str:
    """The key lm-eval's results use for a stored metric name (`acc` -> `acc,none`)."""
    metric, filter_name = split_metric_name(name)
    return f"{metric},{filter_name}"
