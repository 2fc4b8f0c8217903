"""The typed records of human evaluation: campaigns, items, what a rater is served and what they submit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from harness.ratings.rubric import PAIRWISE_QUESTION, Rubric

__all__ = [
    "CAMPAIGN_ID_RE",
    "MODES",
    "VOTES",
    "Campaign",
    "CampaignProgress",
    "Item",
    "Mode",
    "RaterProgress",
    "ServedItem",
    "SubmitResult",
    "Vote",
]

Mode = Literal["rubric", "pairwise"]
MODES: tuple[Mode, ...] = ("rubric", "pairwise")
# A and B are the answers as shown, left and right; `display_order` says which run each was.
Vote = Literal["A", "B", "tie", "both_bad"]
VOTES: tuple[Vote, ...] = ("A", "B", "tie", "both_bad")
# Campaign ids become Parquet part names, so the same rule as run ids applies.
CAMPAIGN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    mode: Mode
    created_at: datetime
    runs: tuple[str, ...]  # the store runs whose outputs are rated
    overlap: int  # distinct raters wanted per item
    seed: int  # fixes the queue order and pairwise display order per rater
    rubric: Rubric | None = None  # rubric mode only
    roster: tuple[str, ...] = ()  # rater ids allowed to rate; empty means anyone who signs in
    description: str = ""

    @property
    def questions(self) -> tuple[str, ...]:
        return self.rubric.criterion_names if self.rubric is not None else (PAIRWISE_QUESTION,)


@dataclass(frozen=True)
class Item:
    """One thing to rate: a prompt with one output (rubric) or two outputs (pairwise).

    `runs[i]` produced `outputs[i]`; for pairwise items this canonical order is never the order a
    rater sees (that is drawn per rater and recorded with the rating). Gold items have no runs
    (`gold:a`, `gold:b` stand in) and carry the accepted answers per question.
    """

    item_id: str
    prompt: str
    outputs: tuple[str, ...]
    runs: tuple[str, ...]
    task: str | None = None
    doc_id: int | None = None
    target: str | None = None
    gold: Mapping[str, tuple[str, ...]] | None = None  # question -> accepted answers (scores as "4")

    @property
    def is_gold(self) -> bool:
        return self.gold is not None


@dataclass(frozen=True)
class ServedItem:
    """An item as one rater sees it: outputs in display order (left first) and that order's runs."""

    item: Item
    display_order: tuple[str, ...]  # run ids (or gold:a/gold:b) left to right
    outputs: tuple[str, ...]  # the outputs in display order
    # Opaque id of this item for this rater: what a page may send to the browser (widget keys),
    # where the item id or the runs would tell a blind rater which run wrote which answer.
    key: str = ""


@dataclass(frozen=True)
class SubmitResult:
    """`saved` is False when this rater had already rated the item (a double click, a second tab):
    the first submission stands and nothing was written."""

    saved: bool
    item_id: str
    message: str


@dataclass(frozen=True)
class RaterProgress:
    rated: int
    skipped: int
    remaining: int  # items the queue would still serve this rater now

    @property
    def total(self) -> int:
        return self.rated + self.skipped + self.remaining


@dataclass(frozen=True)
class CampaignProgress:
    items: int  # non-gold items
    gold_items: int
    overlap: int
    ratings_done: int  # sum over items of min(distinct raters, overlap)
    complete_items: int  # items with `overlap` distinct raters
    raters: int  # distinct raters who rated anything
    by_rater: Mapping[str, int] = field(default_factory=dict)  # rater -> items rated (gold included)

    @property
    def ratings_needed(self) -> int:
        return self.items * self.overlap

    @property
    def fraction(self) -> float:
        return self.ratings_done / self.ratings_needed if self.ratings_needed else 1.0
