"""Fairness metrics over groups of samples (demographic parity and its relatives) and fairness probes.

- `group_metric_frame`: any harness metric per group and between groups (fairlearn MetricFrame's shape).
- `decision_fairness`: demographic parity, equalized odds and equal opportunity of binary decisions.
- `fairness.probes`: scores of the built-in probes (`fairness_*` tasks), read from document fields.
- `field_designs`: several group fields, each alone and every intersection (`fairness.intersections`).
- `permutation_p_values` / `holm`: significance of between-group gaps (`fairness.permutation`).
- `refusal_rate`, `answer_words`, `answer_sentiment`: metrics of generated text for the free-text
  probes, scored by documented rules (`fairness.text_scoring`); registered as harness metrics.
- `group_scores` / `prediction_group_scores` / `task_fairness_scores`: all of it as score rows; the
  row names are listed in `fairness.scores`.

Every number comes with a stratified percentile-bootstrap interval (`fairness.bootstrap`); a number
that is not computable is NaN in the result objects and has no score row, never a 0.
"""

from __future__ import annotations

from harness.fairness.bootstrap import Estimate
from harness.fairness.decisions import DecisionFairness, Decisions, GroupRates, decision_fairness
from harness.fairness.groups import (
    MIN_GROUP_SIZE,
    GroupDesign,
    GroupMetricFrame,
    group_design,
    group_metric_frame,
)
from harness.fairness.intersections import FieldDesign, field_designs
from harness.fairness.permutation import holm, permutation_p_values
from harness.fairness.scores import group_scores, prediction_group_scores
from harness.fairness.task_scores import task_fairness_scores
from harness.fairness.text_metrics import answer_sentiment, answer_words, refusal_rate

__all__ = [
    "MIN_GROUP_SIZE",
    "DecisionFairness",
    "Decisions",
    "Estimate",
    "FieldDesign",
    "GroupDesign",
    "GroupMetricFrame",
    "GroupRates",
    "answer_sentiment",
    "answer_words",
    "decision_fairness",
    "field_designs",
    "group_design",
    "group_metric_frame",
    "group_scores",
    "holm",
    "permutation_p_values",
    "prediction_group_scores",
    "refusal_rate",
    "task_fairness_scores",
]
