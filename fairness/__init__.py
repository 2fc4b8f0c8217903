"""Fairness metrics over groups of samples (demographic parity and its relatives) and fairness probes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.runner import TaskEvaluation
    from metrics import Score


def task_fairness_scores(evaluation: TaskEvaluation, bootstrap_resamples: int, seed: int) -> list[Score]:
    """Extra score rows for a task whose YAML names a `group_field`; none for other tasks."""
    return []


__all__ = ["task_fairness_scores"]
