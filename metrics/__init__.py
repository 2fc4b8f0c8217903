"""Metrics built from additive per-sample statistics (sacrebleu-style), matching lm-eval 0.4.13.

Importing the package registers the built-in metrics; plugins register through the
`harness.metrics` entry-point group.
"""

from __future__ import annotations

# Imported for their registration side effect: every built-in family registers on import.
from metrics import exact_match, loglikelihood, rolling
from metrics.base import (
    METRICS,
    OUTPUT_TYPES,
    Metric,
    SampleOutcome,
    Score,
    default_metrics,
    get_metric,
    statistics_matrix,
)
from metrics.uncertainty import bootstrap_replicates, score

__all__ = [
    "METRICS",
    "OUTPUT_TYPES",
    "Metric",
    "SampleOutcome",
    "Score",
    "bootstrap_replicates",
    "default_metrics",
    "exact_match",
    "get_metric",
    "loglikelihood",
    "rolling",
    "score",
    "statistics_matrix",
]
