"""The ratings database's tables, and the translation between their rows and the typed records.

Lists and mappings (a campaign's runs, an item's outputs, a rating's display order) are JSON text:
SQLite has no arrays, and JSON keeps the file readable with the `sqlite3` shell.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from harness.ratings.records import MODES, Campaign, Item, Mode
from harness.ratings.rubric import rubric_from_mapping

__all__ = [
    "SCHEMA_VERSION",
    "RatingRow",
    "ensure",
    "insert_campaign",
    "item_key_secret",
    "load_campaign",
    "load_campaigns",
    "load_item",
    "load_items",
    "load_ratings",
]

SCHEMA_VERSION = 2
_FORMAT = "harness-ratings"
# Meta key of the random secret that makes the item keys sent to browsers opaque (see `queue.item_key`).
SECRET_KEY = "item_key_secret"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY,
    mode TEXT NOT NULL CHECK (mode IN ('rubric', 'pairwise')),
    created_at TEXT NOT NULL,
    runs TEXT NOT NULL,
    overlap INTEGER NOT NULL CHECK (overlap >= 1),
    seed INTEGER NOT NULL,
    rubric TEXT,
    roster TEXT NOT NULL,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    campaign_id TEXT NOT NULL REFERENCES campaigns (campaign_id),
    item_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    outputs TEXT NOT NULL,
    runs TEXT NOT NULL,
    task TEXT,
    doc_id INTEGER,
    target TEXT,
    gold TEXT,
    PRIMARY KEY (campaign_id, item_id)
);
CREATE TABLE IF NOT EXISTS raters (
    campaign_id TEXT NOT NULL REFERENCES campaigns (campaign_id),
    rater TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (campaign_id, rater)
);
CREATE TABLE IF NOT EXISTS responses (
    campaign_id TEXT NOT NULL,
    rater TEXT NOT NULL,
    item_id TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('rated', 'skipped')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (campaign_id, rater, item_id),
    FOREIGN KEY (campaign_id, item_id) REFERENCES items (campaign_id, item_id)
);
CREATE INDEX IF NOT EXISTS responses_by_item ON responses (campaign_id, item_id);
CREATE TABLE IF NOT EXISTS ratings (
    campaign_id TEXT NOT NULL,
    rater TEXT NOT NULL,
    item_id TEXT NOT NULL,
    question TEXT NOT NULL,
    value REAL,
    vote TEXT,
    comment TEXT NOT NULL,
    created_at TEXT NOT NULL,
    display_order TEXT NOT NULL,
    PRIMARY KEY (campaign_id, rater, item_id, question),
    FOREIGN KEY (campaign_id, item_id) REFERENCES items (campaign_id, item_id)
);
"""

# Version 2: sign-in tokens (only their SHA-256 is kept) and the items each rater was served.
_TABLES_V2 = """
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('rater', 'viewer')),
    campaign_id TEXT REFERENCES campaigns (campaign_id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_holder ON tokens (role, campaign_id, name);
CREATE TABLE IF NOT EXISTS assignments (
    campaign_id TEXT NOT NULL,
    rater TEXT NOT NULL,
    item_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (campaign_id, rater, item_id),
    FOREIGN KEY (campaign_id, item_id) REFERENCES items (campaign_id, item_id)
)
"""


@dataclass(frozen=True)
class RatingRow:
    rater: str
    item_id: str
    question: str
    value: float | None  # rubric score
    vote: str | None  # pairwise vote as shown: A, B, tie, both_bad
    comment: str
    created_at: datetime
    display_order: tuple[str, ...]


def _run(connection: sqlite3.Connection, script: str) -> None:
    # Statement by statement: `executescript` would commit the caller's open transaction first.
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _upgrade(connection: sqlite3.Connection, version: int) -> None:
    """Bring a database of an older schema version up to this one (tables are only ever added)."""
    # IMMEDIATE: two processes creating or upgrading the database at once serialise here.
    connection.execute("BEGIN IMMEDIATE")
    try:
        if version < 1:
            _run(connection, _TABLES)
            connection.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (_FORMAT,))
        _run(connection, _TABLES_V2)
        connection.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (SECRET_KEY, secrets.token_hex(32))
        )
        connection.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def ensure(connection: sqlite3.Connection, *, create: bool, path: Path, error: type[Exception]) -> None:
    """Create the tables (first use), upgrade an older version, or check that this file is a ratings
    database we can read."""
    has_meta = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        other = connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if not create or other:
            raise error(f"{path} is an SQLite file but not a harness ratings database")
        _upgrade(connection, 0)
    meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != _FORMAT:
        raise error(f"{path} is an SQLite file but not a harness ratings database")
    version = meta.get("schema_version", "")
    if not version.isdigit() or int(version) > SCHEMA_VERSION:
        raise error(
            f"ratings database {path} has schema version {version}, newer than the {SCHEMA_VERSION} "
            "this harness supports; upgrade harness to use it"
        )
    if int(version) < SCHEMA_VERSION:
        _upgrade(connection, int(version))
    connection.execute("PRAGMA foreign_keys = ON")


def item_key_secret(connection: sqlite3.Connection) -> bytes:
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (SECRET_KEY,)).fetchone()
    return bytes.fromhex(str(row[0]))


def insert_campaign(connection: sqlite3.Connection, campaign: Campaign, items: Sequence[Item]) -> None:
    connection.execute(
        "INSERT INTO campaigns (campaign_id, mode, created_at, runs, overlap, seed, rubric, roster, "
        "description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            campaign.campaign_id,
            campaign.mode,
            campaign.created_at.isoformat(timespec="microseconds"),
            json.dumps(list(campaign.runs)),
            campaign.overlap,
            campaign.seed,
            None if campaign.rubric is None else json.dumps(campaign.rubric.to_mapping()),
            json.dumps(list(campaign.roster)),
            campaign.description,
        ),
    )
    connection.executemany(
        "INSERT INTO items (campaign_id, item_id, position, prompt, outputs, runs, task, doc_id, target, "
        "gold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                campaign.campaign_id,
                item.item_id,
                position,
                item.prompt,
                json.dumps(list(item.outputs)),
                json.dumps(list(item.runs)),
                item.task,
                item.doc_id,
                item.target,
                None if item.gold is None else json.dumps({q: list(a) for q, a in item.gold.items()}),
            )
            for position, item in enumerate(items)
        ],
    )


def _campaign(row: sqlite3.Row | tuple[Any, ...]) -> Campaign:
    campaign_id, mode, created_at, runs, overlap, seed, rubric, roster, description = row
    if mode not in MODES:
        raise ValueError(f"campaign {campaign_id} has unknown mode {mode!r}")
    return Campaign(
        campaign_id=str(campaign_id),
        mode=cast(Mode, mode),
        created_at=datetime.fromisoformat(created_at),
        runs=tuple(json.loads(runs)),
        overlap=int(overlap),
        seed=int(seed),
        rubric=None if rubric is None else rubric_from_mapping(json.loads(rubric)),
        roster=tuple(json.loads(roster)),
        description=str(description),
    )


_CAMPAIGN_COLUMNS = "campaign_id, mode, created_at, runs, overlap, seed, rubric, roster, description"


def load_campaigns(connection: sqlite3.Connection) -> list[Campaign]:
    rows = connection.execute(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at, campaign_id")
    return [_campaign(row) for row in rows.fetchall()]


def load_campaign(connection: sqlite3.Connection, campaign_id: str) -> Campaign | None:
    row = connection.execute(
        f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE campaign_id = ?", (campaign_id,)
    ).fetchone()
    return None if row is None else _campaign(row)


_ITEM_COLUMNS = "item_id, prompt, outputs, runs, task, doc_id, target, gold"


def _item(row: tuple[Any, ...]) -> Item:
    item_id, prompt, outputs, runs, task, doc_id, target, gold = row
    return Item(
        item_id=str(item_id),
        prompt=str(prompt),
        outputs=tuple(json.loads(outputs)),
        runs=tuple(json.loads(runs)),
        task=task,
        doc_id=None if doc_id is None else int(doc_id),
        target=target,
        gold=None if gold is None else {q: tuple(a) for q, a in json.loads(gold).items()},
    )


def load_items(connection: sqlite3.Connection, campaign_id: str) -> list[Item]:
    rows = connection.execute(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE campaign_id = ? ORDER BY position", (campaign_id,)
    )
    return [_item(row) for row in rows.fetchall()]


def load_item(connection: sqlite3.Connection, campaign_id: str, item_id: str) -> Item | None:
    row = connection.execute(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE campaign_id = ? AND item_id = ?", (campaign_id, item_id)
    ).fetchone()
    return None if row is None else _item(row)


def load_ratings(connection: sqlite3.Connection, campaign_id: str) -> list[RatingRow]:
    rows = connection.execute(
        "SELECT rater, item_id, question, value, vote, comment, created_at, display_order FROM ratings "
        "WHERE campaign_id = ? ORDER BY created_at, rater, item_id, question",
        (campaign_id,),
    ).fetchall()
    return [
        RatingRow(
            rater=str(rater),
            item_id=str(item_id),
            question=str(question),
            value=None if value is None else float(value),
            vote=None if vote is None else str(vote),
            comment=str(comment),
            created_at=datetime.fromisoformat(created_at),
            display_order=tuple(json.loads(order)),
        )
        for rater, item_id, question, value, vote, comment, created_at, order in rows
    ]
