"""Per-rater randomness that is stable across page reruns: queue order, pairwise display order, item keys.

All are pure functions of (campaign seed, rater, item). A Streamlit page reruns its script on
every click, so a fresh random draw would show a different item (or swap A and B) under the
rater's cursor; a keyed hash gives every rater an independent random order that stays put.

Item ids name runs (`task/doc/run_a~run_b`) and gold items (`gold-001`), so a page never sends one
to the browser: widget keys use `item_key`, an HMAC of the item under the database's own secret,
which says nothing about the item to anyone without that secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from harness.ratings.records import Item

__all__ = ["display_order", "item_key", "queue_order"]


def _draw(*parts: object) -> int:
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def queue_order(item_ids: Iterable[str], seed: int, rater: str) -> list[str]:
    """The items in this rater's random order (gold items fall wherever their draw puts them)."""
    return sorted(item_ids, key=lambda item_id: (_draw(seed, rater, item_id), item_id))


def display_order(item: Item, seed: int, rater: str) -> tuple[str, ...]:
    """The runs of an item left to right as this rater sees them: a fair coin per (rater, item)."""
    if len(item.runs) < 2:
        return item.runs
    swap = _draw(seed, rater, item.item_id, "display") & 1
    return tuple(reversed(item.runs)) if swap else item.runs


def item_key(secret: bytes, campaign_id: str, rater: str, item_id: str) -> str:
    """An opaque id for one rater's view of an item (16 hex digits), safe to put in a page."""
    message = "\x1f".join((campaign_id, rater, item_id)).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:16]
