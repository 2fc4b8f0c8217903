"""Metrics built from additive per-sample statistics (sacrebleu-style), matching lm-eval 0.4.13,
sacrebleu, rouge-score, scikit-learn and the SQuAD script.

Importing the package registers the built-in metrics; plugins register through the
`harness.metrics` entry-point group.
"""

from __future__ import annotations

# Imported for their registration side effect: every built-in family registers on import.
from harness.metrics import bleu, chrf, classification, exact_match, loglikelihood, rolling, rouge, squad
from harness.metrics.base import (
    METRICS,
    OUTPUT_TYPES,
    BatchMetric,
    Metric,
    SampleOutcome,
    Score,
    default_metrics,
    statistics_matrix,
)
from harness.metrics.corpus import CorpusScores, score_texts
from harness.metrics.lookup import get_metric, metric_from_signature
from harness.metrics.uncertainty import bootstrap_replicates, score, score_many

__all__ = [
    "METRICS",
    "OUTPUT_TYPES",
    "BatchMetric",
    "CorpusScores",
    "Metric",
    "SampleOutcome",
    "Score",
    "bleu",
    "bootstrap_replicates",
    "chrf",
    "classification",
    "default_metrics",
    "exact_match",
    "get_metric",
    "loglikelihood",
    "metric_from_signature",
    "rolling",
    "rouge",
    "score",
    "score_many",
    "score_texts",
    "squad",
    "statistics_matrix",
]
