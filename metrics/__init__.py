"""Metrics built from additive per-sample statistics (sacrebleu-style), matching lm-eval 0.4.13.

Importing the package registers the built-in metrics; plugins register through the
`harness.metrics` entry-point group.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Where each public name lives, for the lazy lookup below.
_EXPORTS = {
    "METRICS": "metrics.base",
    "OUTPUT_TYPES": "metrics.base",
    "Metric": "metrics.base",
    "SampleOutcome": "metrics.base",
    "Score": "metrics.base",
    "default_metrics": "metrics.base",
    "get_metric": "metrics.base",
    "statistics_matrix": "metrics.base",
    "bootstrap_replicates": "metrics.uncertainty",
    "score": "metrics.uncertainty",
}

if not TYPE_CHECKING:  # hidden from mypy so a misspelt `metrics.X` is still a type error

    def __getattr__(name: str) -> Any:
        # Import cycle: `harness/__init__` imports the runner, which imports from `metrics`. When
        # `metrics` is imported first, the runner asks this half-initialised package for names;
        # resolving them lazily from the (harness-free at that point) submodules breaks the cycle.
        if name in _EXPORTS:
            return getattr(importlib.import_module(_EXPORTS[name]), name)
        raise AttributeError(f"module 'metrics' has no attribute {name!r}")


# Initialise `harness` before our submodules import from it, so the cycle above resolves through
# `__getattr__` against fresh submodules instead of half-executed ones.
import harness  # noqa: E402, F401

# Imported for their registration side effect: every built-in family registers on import.
from metrics import exact_match, loglikelihood, rolling  # noqa: E402
from metrics.base import (  # noqa: E402
    METRICS,
    OUTPUT_TYPES,
    Metric,
    SampleOutcome,
    Score,
    default_metrics,
    get_metric,
    statistics_matrix,
)
from metrics.uncertainty import bootstrap_replicates, score  # noqa: E402

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
