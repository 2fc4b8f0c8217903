"""Checking a submission before anything is written: every question answered, each in range."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.ratings.errors import RatingsError
from harness.ratings.records import VOTES, Campaign
from harness.ratings.rubric import SCALE_POINTS

__all__ = ["Answer", "validate_answers"]


@dataclass(frozen=True)
class Answer:
    question: str
    value: float | None  # rubric score
    vote: str | None  # pairwise vote as shown


def validate_answers(campaign: Campaign, answers: Mapping[str, object]) -> list[Answer]:
    """One `Answer` per question of the campaign, in its order; RatingsError naming the first problem."""
    expected = campaign.questions
    extra = sorted(str(question) for question in answers if question not in expected)
    if extra:
        raise RatingsError(f"campaign '{campaign.campaign_id}' asks no question '{extra[0]}'")
    missing = [question for question in expected if question not in answers]
    if missing:
        raise RatingsError(f"answer every question before submitting (missing: {', '.join(missing)})")
    checked: list[Answer] = []
    for question in expected:
        answer = answers[question]
        if campaign.mode == "pairwise":
            if answer not in VOTES:
                raise RatingsError(f"a pairwise vote is one of {', '.join(VOTES)}, not {answer!r}")
            checked.append(Answer(question, None, str(answer)))
        elif isinstance(answer, int) and not isinstance(answer, bool) and answer in SCALE_POINTS:
            checked.append(Answer(question, float(answer), None))
        else:
            raise RatingsError(f"'{question}' takes a whole number from 1 to 5, not {answer!r}")
    return checked
