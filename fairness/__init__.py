"""Fairness metrics over groups of samples (demographic parity and its relatives) and fairness probes.

- `group_metric_frame`: any harness metric per group and between groups (fairlearn MetricFrame's shape).
- `decision_fairness`: demographic parity, equalized odds and equal opportunity of binary decisions.
- `fairness.probes`: scores of the built-in probes (`fairness_*` tasks), read from document fields.
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
from harness.fairness.scores import group_scores, prediction_group_scores, task_fairness_scores

__all__ = [
    "MIN_GROUP_SIZE",
    "DecisionFairness",
    "Decisions",
    "Estimate",
    "GroupDesign",
    "GroupMetricFrame",
    "GroupRates",
    "decision_fairness",
    "group_design",
    "group_metric_frame",
    "group_scores",
    "prediction_group_scores",
    "task_fairness_scores",
]
