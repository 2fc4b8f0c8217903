"""Warnings about a task's outcomes that make its scores mean less than they seem.

A score of 0 from a model whose every generation was empty, or an accuracy that only measures how ties
are broken, looks like any other number in a table. These checks name such cases, one line each; the
run shows them and keeps them in its provenance. They never change a score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.metrics.base import SampleOutcome

# "Most" documents: at or above this share the task is reported (all of them is the common case).
MOST = 0.9
# Below this many documents a task's intervals are too wide and its value too unstable to compare.
MIN_DOCUMENTS = 10


@dataclass(frozen=True)
class OutcomeWarning:
    """One warning about one task: `kind` is stable (for scripts), `message` is for people."""

    task: str
    kind: str  # empty_predictions | tied_choices | few_documents
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"task": self.task, "kind": self.kind, "message": self.message}


def _share(count: int, total: int) -> str:
    return f"all {total}" if count == total else f"{count} of {total}"


def _when_most(
    task: str,
    outcomes: Sequence[SampleOutcome],
    output_type: str,
    test: Callable[[SampleOutcome], bool],
    kind: str,
    message: Callable[[str], str],
) -> OutcomeWarning | None:
    """A `kind` warning when `test` holds for at least MOST of the `output_type` outcomes; `message`
    gets their share as words ("all 10", "9 of 10")."""
    chosen = [outcome for outcome in outcomes if outcome.output_type == output_type]
    hits = sum(1 for outcome in chosen if test(outcome))
    if not chosen or hits < MOST * len(chosen):
        return None
    return OutcomeWarning(task, kind, message(_share(hits, len(chosen))))


def _empty_predictions(task: str, outcomes: Sequence[SampleOutcome]) -> OutcomeWarning | None:
    return _when_most(
        task,
        outcomes,
        "generate_until",
        lambda outcome: not (outcome.prediction or "").strip(),
        "empty_predictions",
        lambda share: (
            f"{task}: {share} predictions are empty, so its scores say nothing about "
            "the answers; check the stop sequences (until), max_gen_toks and the prompt"
        ),
    )


def _tied(logprobs: tuple[float, ...]) -> bool:
    values = np.asarray(logprobs, dtype=np.float64)
    return values.size > 1 and bool(np.all(values == values[0]))


def _tied_choices(task: str, outcomes: Sequence[SampleOutcome]) -> OutcomeWarning | None:
    return _when_most(
        task,
        outcomes,
        "multiple_choice",
        lambda outcome: _tied(outcome.choice_logprobs),
        "tied_choices",
        lambda share: (
            f"{task}: every choice has the same log-likelihood in {share} documents, so "
            "accuracy measures how ties are broken (the first choice wins), not the model"
        ),
    )


def _few_documents(task: str, outcomes: Sequence[SampleOutcome]) -> OutcomeWarning | None:
    if len(outcomes) >= MIN_DOCUMENTS:
        return None
    return OutcomeWarning(
        task,
        "few_documents",
        f"{task}: only {len(outcomes)} document{'s' if len(outcomes) != 1 else ''} (fewer than "
        f"{MIN_DOCUMENTS}); its scores are too unstable to compare with other runs",
    )


def outcome_warnings(task: str, outcomes: Sequence[SampleOutcome]) -> list[OutcomeWarning]:
    """Every warning about one task's scored documents, in a fixed order."""
    checks = (_empty_predictions, _tied_choices, _few_documents)
    return [found for check in checks if (found := check(task, outcomes)) is not None]


__all__ = ["MIN_DOCUMENTS", "MOST", "OutcomeWarning", "outcome_warnings"]
