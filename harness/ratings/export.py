"""The Parquet `ratings` table: one part file per campaign, `<store>/ratings/part-<campaign>.parquet`.

The SQLite database is the source of truth; this table is its export for the leaderboard, DuckDB
and pandas users (`pd.read_parquet("harness_store/ratings")`). Each row is one answer of one rater
to one question of one item, self-contained: it carries the rated run (rubric), the canonical pair
and the winner (pairwise), and whether a gold item was answered correctly, so readers need no join.

The store writes and reads the parts (`harness.store`); a part is rewritten whole, never in place.
Exports of one campaign from several processes (two rating pages, the CLI) take an exclusive file
lock around snapshot-and-replace, so an older snapshot can never replace a newer one.

A store in object storage (`s3://bucket/prefix`) gets the same table: its database lives on this
machine (`RatingsDB.for_store`), and each export uploads a campaign's part as one object at its final
key, which readers see whole or not at all (`harness.store.location.write_file`). The lock then
lives in the local folder kept for that store (`harness.store.location.local_directory`): the
exporters that can race are the ones sharing that database, all on this machine.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from harness.errors import HarnessError
from harness.ratings.db import RatingsDB
from harness.ratings.errors import RatingsError
from harness.ratings.records import Campaign, Item
from harness.ratings.schema import RatingRow
from harness.store import ResultStore, read_table, write_part
from harness.store.location import is_remote, local_directory, uri

__all__ = [
    "RATINGS_SCHEMA",
    "canonical_vote",
    "export_campaign",
    "export_ratings",
    "gold_correct",
    "ratings_frame",
    "ratings_table",
    "read_ratings",
]

RATINGS_TABLE = "ratings"
_LOCK_NAME = ".export.lock"  # dot-named: dataset readers and the *.parquet glob skip it
_METADATA = {b"harness.schema_version": b"1", b"harness.table": b"ratings"}

RATINGS_SCHEMA = pa.schema(
    [
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("rater", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("value", pa.float64()),  # rubric score 1-5
        pa.field("vote", pa.string()),  # pairwise, as shown: A (left), B (right), tie, both_bad
        pa.field("comment", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("display_order", pa.list_(pa.string()), nullable=False),  # runs left to right
        pa.field("task", pa.string()),
        pa.field("doc_id", pa.int64()),
        pa.field("run_id", pa.string()),  # rubric: the rated run
        pa.field("run_a", pa.string()),  # pairwise: the pair in canonical order
        pa.field("run_b", pa.string()),
        pa.field("winner_run", pa.string()),  # pairwise: the preferred run; null for tie / both bad
        pa.field("is_gold", pa.bool_(), nullable=False),
        pa.field("gold_correct", pa.bool_()),  # gold items only
    ],
    metadata=_METADATA,
)


def canonical_vote(vote: str, display_order: Sequence[str], runs: Sequence[str]) -> str:
    """A vote as shown (A = left) restated for the item's canonical pair: a, b, tie or both_bad.

    Raters see each pair in their own random order, so only the canonical form can be compared
    across raters (agreement) or checked against a gold answer.
    """
    if vote not in ("A", "B"):
        return vote
    shown = display_order[0] if vote == "A" else display_order[1]
    return "a" if shown == runs[0] else "b"


def gold_correct(item: Item, row: RatingRow) -> bool | None:
    """Whether an answer to a gold item is among its accepted answers; None for other items."""
    if item.gold is None:
        return None
    accepted = item.gold.get(row.question)
    if accepted is None:
        return None
    if row.vote is not None:
        return canonical_vote(row.vote, row.display_order, item.runs) in accepted
    return row.value is not None and str(round(row.value)) in accepted


def _row(campaign: Campaign, item: Item, row: RatingRow) -> dict[str, object]:
    pairwise = campaign.mode == "pairwise" and not item.is_gold
    winner = None
    if pairwise and row.vote in ("A", "B"):
        winner = row.display_order[0] if row.vote == "A" else row.display_order[1]
    return {
        "campaign_id": campaign.campaign_id,
        "mode": campaign.mode,
        "item_id": item.item_id,
        "rater": row.rater,
        "question": row.question,
        "value": row.value,
        "vote": row.vote,
        "comment": row.comment,
        "created_at": row.created_at,
        "display_order": list(row.display_order),
        "task": item.task,
        "doc_id": item.doc_id,
        "run_id": item.runs[0] if campaign.mode == "rubric" and not item.is_gold else None,
        "run_a": item.runs[0] if pairwise else None,
        "run_b": item.runs[1] if pairwise else None,
        "winner_run": winner,
        "is_gold": item.is_gold,
        "gold_correct": gold_correct(item, row),
    }


def ratings_table(campaign: Campaign, items: Sequence[Item], rows: Sequence[RatingRow]) -> pa.Table:
    by_id = {item.item_id: item for item in items}
    return pa.Table.from_pylist(
        [_row(campaign, by_id[row.item_id], row) for row in rows], schema=RATINGS_SCHEMA
    )


def ratings_frame(db: RatingsDB, campaign_id: str) -> pd.DataFrame:
    """A campaign's ratings straight from the database, shaped like the Parquet table."""
    campaign, items, rows = db.rating_rows(campaign_id)
    return ratings_table(campaign, items, rows).to_pandas()


@contextlib.contextmanager
def _export_lock(directory: Path) -> Iterator[None]:
    with open(directory / _LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _lock_dir(store_root: str | Path) -> Path:
    """Where the export lock lives: the store's ratings folder, or for a remote store a local folder
    (an object store has no locks); checks first that the store is there."""
    if is_remote(store_root):
        # A missing bucket, wrong credentials, no endpoint: one line; a prefix with no store: refused.
        if not ResultStore(store_root).exists():
            raise RatingsError(f"no results store at {uri(store_root)}")
        directory = local_directory(store_root) / RATINGS_TABLE
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    root = Path(store_root)
    if not root.is_dir():
        raise RatingsError(f"no results store at {root}")
    directory = root / RATINGS_TABLE
    directory.mkdir(exist_ok=True)
    return directory


def export_campaign(db: RatingsDB, store_root: str | Path, campaign_id: str) -> tuple[Path, int]:
    """Write one campaign's part file; returns its path (an `s3://` one folded by Path: see
    `harness.store.location.uri`) and row count."""
    directory = _lock_dir(store_root)
    with _export_lock(directory):
        campaign, items, rows = db.rating_rows(campaign_id)
        table = ratings_table(campaign, items, rows)
        target = write_part(store_root, RATINGS_TABLE, campaign_id, table)
    return target, table.num_rows


def export_ratings(
    db: RatingsDB, store_root: str | Path, campaign_ids: Sequence[str] | None = None
) -> list[tuple[Path, int]]:
    """Export the named campaigns, or every campaign in the database."""
    chosen = list(campaign_ids) if campaign_ids else [c.campaign_id for c in db.campaigns()]
    return [export_campaign(db, store_root, campaign_id) for campaign_id in chosen]


def read_ratings(store_root: str | Path, campaign_id: str | None = None) -> pd.DataFrame:
    """The exported ratings table (every campaign, or one); empty with the schema's columns if none."""
    keys = None if campaign_id is None else [campaign_id]
    try:
        table = read_table(store_root, RATINGS_TABLE, RATINGS_SCHEMA, keys)
    except HarnessError as error:
        raise RatingsError(
            f"cannot read the ratings table in {uri(store_root)}/{RATINGS_TABLE}: {error}"
        ) from error
    return table.to_pandas()
