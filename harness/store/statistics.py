"""The samples table's per-document statistics: one writer of its keys, one reader.

Each document's additive statistics are stored as one JSON object in `samples.statistics`. A metric
with one statistic is stored under its bare name (`{"token_perplexity": -3.2}`); a metric with
several under `metric/statistic` keys (`{"acc/correct": 1.0, "acc/count": 1.0}`). A mean metric may
also appear as its bare per-document value, whose count is then 1. `statistic_keys` is the only
place that forms keys and `metric_of_key` the only place that takes one apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

__all__ = [
    "MetricStatistics",
    "bare_values",
    "decode_statistics",
    "encode_statistics",
    "metric_names",
    "metric_of_key",
    "statistic_keys",
    "statistics_matrix",
]

_SEPARATOR = "/"


class MetricStatistics(Protocol):
    """What the codec needs of a metric (`harness.metrics.Metric` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def statistic_names(self) -> tuple[str, ...]: ...

    @property
    def is_mean(self) -> bool: ...


def statistic_keys(metric: str, statistic_names: Sequence[str]) -> tuple[str, ...]:
    """The keys metric `metric`'s statistics are stored under, in `statistic_names` order."""
    if len(statistic_names) == 1:
        return (metric,)
    return tuple(f"{metric}{_SEPARATOR}{statistic}" for statistic in statistic_names)


def metric_of_key(key: str) -> str:
    """The metric a stored key belongs to. Statistic names never contain the separator, so the last
    one splits (a metric name may hold one, as `evaluate:org/metric` does)."""
    metric, separator, _ = key.rpartition(_SEPARATOR)
    return metric if separator else key


def encode_statistics(
    metrics: Sequence[MetricStatistics], matrices: Sequence[np.ndarray], documents: int
) -> list[dict[str, float]]:
    """One mapping per document from each metric's (documents, statistics) matrix, ready to store."""
    encoded: list[dict[str, float]] = [{} for _ in range(documents)]
    for metric, matrix in zip(metrics, matrices, strict=True):
        rows = np.asarray(matrix, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] != documents:
            raise ValueError(
                f"metric {metric.name}: statistics of shape {rows.shape} for {documents} documents"
            )
        keys = statistic_keys(metric.name, metric.statistic_names)
        for document, row in zip(encoded, rows.tolist(), strict=True):
            document.update(zip(keys, row, strict=True))
    return encoded


def decode_statistics(text: object) -> dict[str, float]:
    """One stored statistics value as a mapping; anything unreadable reads as no statistics."""
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _decoded(rows: Iterable[object]) -> list[dict[str, float]]:
    return [row if isinstance(row, dict) else decode_statistics(row) for row in rows]


def metric_names(rows: Iterable[object]) -> list[str]:
    """Metric names present in stored statistics (JSON text or decoded), in first-seen order."""
    seen: dict[str, None] = {}
    for row in _decoded(rows):
        for key in row:
            seen.setdefault(metric_of_key(key), None)
    return list(seen)


def statistics_matrix(rows: Iterable[object], metric: MetricStatistics) -> tuple[np.ndarray, np.ndarray]:
    """The (documents, statistics) matrix of `metric` in `statistic_names` order, and which documents
    have them; a document without them is a row of NaN (callers that must not skip one check `found`)."""
    decoded = _decoded(rows)
    names = metric.statistic_names
    keys = statistic_keys(metric.name, names)
    matrix = np.full((len(decoded), len(names)), np.nan)
    found = np.zeros(len(decoded), dtype=bool)
    for index, row in enumerate(decoded):
        if all(key in row for key in keys):
            matrix[index] = [float(row[key]) for key in keys]
        elif metric.is_mean and metric.name in row:
            # A mean metric may be stored as its bare per-document value; its count is then 1.
            matrix[index] = [float(row[metric.name]), *([1.0] * (len(names) - 1))]
        else:
            continue
        found[index] = True
    return matrix, found


def bare_values(rows: Iterable[object], name: str) -> np.ndarray:
    """Per-document values stored under the bare key `name` (a metric not registered here), (n, 1)."""
    decoded = _decoded(rows)
    values = [float(row.get(name, math.nan)) for row in decoded]
    return np.asarray(values, dtype=np.float64).reshape(len(decoded), 1)
