"""The ratings database: SQLite in WAL mode, one file (`<store>/ratings.sqlite` by default; for a store
in object storage a local file, see `RatingsDB.for_store`).

Every rating is committed when it is submitted, in its own short write transaction
(`BEGIN IMMEDIATE`, so two writers queue on SQLite's lock instead of failing half-way). The
primary key (campaign, rater, item, question) makes a second submission of the same answer (a
double click, a second tab, a retried request) a no-op that is reported, never a duplicate; an
item's answers to all its questions are written together or not at all. WAL lets the rating pages,
the results page and `harness ratings export` read while raters write.

Each thread keeps one connection per `RatingsDB` (Streamlit runs sessions on threads); other
processes (the CLI, other app servers, a forked child) open their own.

Raters sign in with personal tokens (`invite`, `identify`; see `access`). An item is assigned to a
rater when the queue serves it to them (`next_item` records that), and only then may they rate or
skip it: `submit` and `skip` refuse any other item with `ItemNotAssignedError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from harness.ratings import schema
from harness.ratings.access import Identity, Invitation, Role, hash_token, new_token
from harness.ratings.answers import validate_answers
from harness.ratings.errors import ItemNotAssignedError, RatingsBusyError, RatingsError, SignInError
from harness.ratings.queue import display_order, item_key, queue_order
from harness.ratings.records import (
    Campaign,
    CampaignProgress,
    Item,
    RaterProgress,
    ServedItem,
    SubmitResult,
)
from harness.sqlite_wal import enable_wal
from harness.store.location import local_directory

__all__ = ["DB_FILE_NAME", "RatingsDB", "normalise_rater"]

DB_FILE_NAME = "ratings.sqlite"
DEFAULT_TIMEOUT_S = 10.0
_MAX_COMMENT = 5000


def normalise_rater(name: str) -> str:
    """The rater id for a typed name: whitespace collapsed and case folded, so "Ann " is "ann"."""
    rater = " ".join(str(name).split()).casefold()
    if not rater:
        raise RatingsError("a rater name must not be empty")
    if len(rater) > 64 or not rater.isprintable():
        raise RatingsError("a rater name is at most 64 printable characters")
    return rater


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class RatingsDB:
    """The ratings database at `path`; constructing one touches nothing on disk."""

    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()  # sqlite3 connections belong to the thread that made them
        self._pid = os.getpid()

    @classmethod
    def for_store(cls, store_root: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> RatingsDB:
        """The default database of a store: inside a local store; for a store in object storage
        (`s3://bucket/prefix`: SQLite cannot live there) on this machine, next to that store's request
        cache (`harness.store.location.local_directory`). Raters of a remote store therefore rate
        through one app server (or pass `--db` to share a database file); the Parquet export is what
        the store, and everyone reading it, sees."""
        return cls(local_directory(store_root) / DB_FILE_NAME, timeout=timeout)

    def __repr__(self) -> str:
        return f"RatingsDB({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.is_file()

    # -- connections -----------------------------------------------------------------------------

    def _translate(self, error: sqlite3.Error) -> RatingsError:
        text = str(error)
        if isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return RatingsBusyError(
                f"the ratings database {self.path} is locked by another process (waited "
                f"{self.timeout:g} s); nothing was saved, please submit again"
            )
        if isinstance(error, sqlite3.IntegrityError):
            return RatingsError(f"the ratings database refused the write: {text}")
        return RatingsError(
            f"{self.path} is not a usable ratings database ({text}); it may be corrupt: restore it "
            "from a backup or move it aside (exported ratings in the store's ratings/ folder are kept)"
        )

    def _open(self, create: bool) -> sqlite3.Connection:
        if not create and not self.path.is_file():
            raise RatingsError(f"no ratings database at {self.path}; create a campaign first")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # mode=rw never creates a file, so a mistyped path is an error rather than an empty database.
        uri = f"file:{quote(str(self.path.resolve()))}?mode={'rwc' if create else 'rw'}"
        connection = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        try:
            # NORMAL sync in WAL mode survives any process crash; only an OS crash or power cut can
            # lose the last commits, and it saves an fsync per rating.
            enable_wal(connection, self.timeout)
            schema.ensure(connection, create=create, path=self.path, error=RatingsError)
        except BaseException:
            connection.close()
            raise
        return connection

    @contextlib.contextmanager
    def _connect(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        """This thread's connection, opened on first use and kept: closing the last connection to a
        WAL database checkpoints it, which would otherwise cost more than the rating itself."""
        if self._pid != os.getpid():
            # A forked child must never use (or close) its parent's connection: start afresh.
            self._local, self._pid = threading.local(), os.getpid()
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        try:
            if connection is None:
                connection = self._local.connection = self._open(create)
            yield connection
        except sqlite3.Error as error:
            self.close()  # reopen next time: the file may have been replaced or repaired meanwhile
            raise self._translate(error) from error

    def close(self) -> None:
        """Close this thread's connection (the next operation opens a new one)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    @contextlib.contextmanager
    def _write(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        with self._connect(create=create) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # -- campaigns -------------------------------------------------------------------------------

    def create_campaign(self, campaign: Campaign, items: Sequence[Item]) -> None:
        """Store a campaign and its items in one transaction; an existing id is an error."""
        if not items:
            raise RatingsError(f"campaign '{campaign.campaign_id}' has no items to rate")
        with self._write(create=True) as connection:
            if schema.load_campaign(connection, campaign.campaign_id) is not None:
                raise RatingsError(f"campaign '{campaign.campaign_id}' already exists in {self.path}")
            schema.insert_campaign(connection, campaign, items)

    def campaigns(self) -> list[Campaign]:
        if not self.exists():
            return []
        with self._connect() as connection:
            return schema.load_campaigns(connection)

    def campaign(self, campaign_id: str) -> Campaign:
        with self._connect() as connection:
            return self._campaign(connection, campaign_id)

    def _campaign(self, connection: sqlite3.Connection, campaign_id: str) -> Campaign:
        campaign = schema.load_campaign(connection, campaign_id)
        if campaign is None:
            known = ", ".join(c.campaign_id for c in schema.load_campaigns(connection)) or "none yet"
            raise RatingsError(f"no campaign '{campaign_id}' in {self.path} (campaigns: {known})")
        return campaign

    def items(self, campaign_id: str) -> list[Item]:
        with self._connect() as connection:
            self._campaign(connection, campaign_id)
            return schema.load_items(connection, campaign_id)

    # -- raters ----------------------------------------------------------------------------------

    def register_rater(self, campaign_id: str, name: str) -> str:
        """The rater id for `name`, recorded for the campaign; refused if a roster leaves it out."""
        rater = normalise_rater(name)
        with self._write() as connection:
            campaign = self._campaign(connection, campaign_id)
            if campaign.roster and rater not in campaign.roster:
                raise RatingsError(
                    f"'{rater}' is not on the rater list of campaign '{campaign_id}'; ask its organiser"
                )
            connection.execute(
                "INSERT OR IGNORE INTO raters (campaign_id, rater, created_at) VALUES (?, ?, ?)",
                (campaign_id, rater, _now()),
            )
        return rater

    def invite(self, campaign_id: str, name: str) -> Invitation:
        """A personal sign-in token for rater `name` of this campaign (replacing any earlier one)."""
        rater = self.register_rater(campaign_id, name)
        return self._new_token("rater", rater, campaign_id)

    def add_viewer(self, name: str) -> Invitation:
        """A sign-in token for the results pages (when the app requires viewers to sign in)."""
        viewer = " ".join(str(name).split())
        if not viewer or len(viewer) > 64 or not viewer.isprintable():
            raise RatingsError("a viewer name is 1 to 64 printable characters")
        return self._new_token("viewer", viewer, None)

    def _new_token(self, role: Role, name: str, campaign_id: str | None) -> Invitation:
        token = new_token()
        identity = Identity(role=role, name=name, campaign_id=campaign_id, token_hash=hash_token(token))
        with self._write(create=role == "viewer") as connection:
            connection.execute(
                "DELETE FROM tokens WHERE role = ? AND campaign_id IS ? AND name = ?",
                (role, campaign_id, name),
            )
            connection.execute(
                "INSERT INTO tokens (token_hash, role, campaign_id, name, created_at) VALUES (?, ?, ?, ?, ?)",
                (identity.token_hash, role, campaign_id, name, _now()),
            )
        return Invitation(identity=identity, token=token)

    def identify(self, token: str, role: Role = "rater") -> Identity:
        """Who holds `token` (a hash lookup: the token itself is never stored); SignInError if nobody."""
        return self._identity(hash_token(token), role)

    def current(self, identity: Identity) -> Identity:
        """`identity` again if its token is still valid (not replaced by a newer invitation)."""
        return self._identity(identity.token_hash, identity.role)

    def _identity(self, token_hash: str, role: Role) -> Identity:
        if not self.exists():
            raise SignInError("that token is not valid here: no one has been invited yet")
        with self._connect() as connection:
            row = connection.execute(
                "SELECT campaign_id, name FROM tokens WHERE token_hash = ? AND role = ?", (token_hash, role)
            ).fetchone()
        if row is None:
            raise SignInError(
                f"that {role} token is not valid (mistyped, or replaced by a newer invitation); "
                "ask the organiser for a new one"
            )
        campaign_id, name = row
        return Identity(role=role, name=str(name), campaign_id=campaign_id, token_hash=token_hash)

    def _check_rater(self, connection: sqlite3.Connection, campaign_id: str, rater: str) -> None:
        row = connection.execute(
            "SELECT 1 FROM raters WHERE campaign_id = ? AND rater = ?", (campaign_id, rater)
        ).fetchone()
        if row is None:
            raise RatingsError(f"unknown rater '{rater}' for campaign '{campaign_id}'; sign in first")

    # -- the queue -------------------------------------------------------------------------------

    def _queue(self, connection: sqlite3.Connection, campaign: Campaign, rater: str) -> list[str]:
        """Item ids this rater may still rate, in the rater's own random order.

        Gold items go to every rater (they check raters, not outputs); other items only while they
        have fewer than `overlap` distinct raters.
        """
        rows = connection.execute(
            """
            SELECT i.item_id, i.gold IS NOT NULL,
                   (SELECT COUNT(*) FROM responses r WHERE r.campaign_id = i.campaign_id
                      AND r.item_id = i.item_id AND r.outcome = 'rated')
            FROM items i
            WHERE i.campaign_id = ? AND NOT EXISTS (
                SELECT 1 FROM responses r
                WHERE r.campaign_id = i.campaign_id AND r.item_id = i.item_id AND r.rater = ?)
            """,
            (campaign.campaign_id, rater),
        ).fetchall()
        open_ids = [str(item_id) for item_id, gold, raters in rows if gold or raters < campaign.overlap]
        return queue_order(open_ids, campaign.seed, rater)

    def next_item(self, campaign_id: str, rater: str) -> ServedItem | None:
        """The item to show this rater now, with its display order; None when nothing is left.

        The order is a pure function of (seed, rater, item), so a page rerun or a second tab shows
        the same item until it is rated or skipped.
        """
        with self._connect() as connection:
            campaign = self._campaign(connection, campaign_id)
            self._check_rater(connection, campaign_id, rater)
            queue = self._queue(connection, campaign, rater)
            if not queue:
                return None
            item = schema.load_item(connection, campaign_id, queue[0])
            secret = schema.item_key_secret(connection)
            assigned = self._assigned(connection, campaign_id, rater, queue[0])
        assert item is not None  # it was just listed, and items are never deleted
        if not assigned:
            # Only the first serving writes; reruns showing the same item stay reads.
            with self._write() as connection:
                connection.execute(
                    "INSERT OR IGNORE INTO assignments (campaign_id, rater, item_id, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (campaign_id, rater, item.item_id, _now()),
                )
        order = display_order(item, campaign.seed, rater)
        outputs = tuple(item.outputs[item.runs.index(run)] for run in order)
        key = item_key(secret, campaign_id, rater, item.item_id)
        return ServedItem(item=item, display_order=order, outputs=outputs, key=key)

    @staticmethod
    def _assigned(connection: sqlite3.Connection, campaign_id: str, rater: str, item_id: str) -> bool:
        row = connection.execute(
            "SELECT 1 FROM assignments WHERE campaign_id = ? AND rater = ? AND item_id = ?",
            (campaign_id, rater, item_id),
        ).fetchone()
        return row is not None

    def _check_assigned(
        self, connection: sqlite3.Connection, campaign: Campaign, rater: str, item_id: str
    ) -> None:
        """An item is a rater's once the queue served it to them (`next_item`); a later overlap
        filled by others does not take it back. Any other item is refused, so a rater (or a script
        with their token) cannot pick which items to rate, stuff full items or rate unseen ones."""
        if not self._assigned(connection, campaign.campaign_id, rater, item_id):
            raise ItemNotAssignedError(
                f"item '{item_id}' of campaign '{campaign.campaign_id}' is not assigned to rater "
                f"'{rater}'; nothing was saved"
            )

    # -- submissions -----------------------------------------------------------------------------

    def submit(
        self,
        campaign_id: str,
        rater: str,
        item_id: str,
        answers: Mapping[str, object],
        *,
        display_order: Sequence[str],
        comment: str = "",
    ) -> SubmitResult:
        """Record a rater's answers to every question of an item, exactly once.

        `answers` maps each question (rubric criterion, or `preference`) to a score 1-5 or a vote;
        `display_order` is the runs as shown, left first. A repeat submission changes nothing
        and says so; the first one stands.
        """
        if len(comment) > _MAX_COMMENT:
            raise RatingsError(f"a comment is at most {_MAX_COMMENT} characters")
        with self._write() as connection:
            campaign = self._campaign(connection, campaign_id)
            rows = validate_answers(campaign, answers)
            self._check_rater(connection, campaign_id, rater)
            item = schema.load_item(connection, campaign_id, item_id)
            if item is None:
                raise RatingsError(f"campaign '{campaign_id}' has no item '{item_id}'")
            if sorted(display_order) != sorted(item.runs):
                raise RatingsError(f"display order {list(display_order)} does not match item '{item_id}'")
            done = connection.execute(
                "SELECT 1 FROM responses WHERE campaign_id = ? AND rater = ? AND item_id = ? "
                "AND outcome = 'rated'",
                (campaign_id, rater, item_id),
            ).fetchone()
            if done is not None:
                return SubmitResult(False, item_id, "You already rated this item; it was not counted twice.")
            self._check_assigned(connection, campaign, rater, item_id)
            created_at, order = _now(), json.dumps(list(display_order))
            connection.executemany(
                "INSERT INTO ratings (campaign_id, rater, item_id, question, value, vote, comment, "
                "created_at, display_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        campaign_id,
                        rater,
                        item_id,
                        answer.question,
                        answer.value,
                        answer.vote,
                        comment.strip(),
                        created_at,
                        order,
                    )
                    for answer in rows
                ],
            )
            # A rating after a skip (another tab) upgrades the skip: the rating is what counts.
            connection.execute(
                "INSERT INTO responses (campaign_id, rater, item_id, outcome, created_at) "
                "VALUES (?, ?, ?, 'rated', ?) ON CONFLICT (campaign_id, rater, item_id) "
                "DO UPDATE SET outcome = 'rated', created_at = excluded.created_at",
                (campaign_id, rater, item_id, created_at),
            )
        return SubmitResult(True, item_id, "Saved.")

    def skip(self, campaign_id: str, rater: str, item_id: str) -> None:
        """Never serve this item to this rater again; a skip is not a rating and counts for nothing."""
        with self._write() as connection:
            campaign = self._campaign(connection, campaign_id)
            self._check_rater(connection, campaign_id, rater)
            if schema.load_item(connection, campaign_id, item_id) is None:
                raise RatingsError(f"campaign '{campaign_id}' has no item '{item_id}'")
            self._check_assigned(connection, campaign, rater, item_id)
            connection.execute(
                "INSERT OR IGNORE INTO responses (campaign_id, rater, item_id, outcome, created_at) "
                "VALUES (?, ?, ?, 'skipped', ?)",
                (campaign_id, rater, item_id, _now()),
            )

    # -- progress and reading --------------------------------------------------------------------

    def rater_progress(self, campaign_id: str, rater: str) -> RaterProgress:
        with self._connect() as connection:
            campaign = self._campaign(connection, campaign_id)
            counts = dict(
                connection.execute(
                    "SELECT outcome, COUNT(*) FROM responses WHERE campaign_id = ? AND rater = ? "
                    "GROUP BY outcome",
                    (campaign_id, rater),
                ).fetchall()
            )
            remaining = len(self._queue(connection, campaign, rater))
        return RaterProgress(
            rated=int(counts.get("rated", 0)), skipped=int(counts.get("skipped", 0)), remaining=remaining
        )

    def campaign_progress(self, campaign_id: str) -> CampaignProgress:
        with self._connect() as connection:
            campaign = self._campaign(connection, campaign_id)
            per_item = connection.execute(
                """
                SELECT i.gold IS NOT NULL, COUNT(r.rater) FROM items i
                LEFT JOIN responses r ON r.campaign_id = i.campaign_id AND r.item_id = i.item_id
                    AND r.outcome = 'rated'
                WHERE i.campaign_id = ? GROUP BY i.item_id
                """,
                (campaign_id,),
            ).fetchall()
            by_rater = dict(
                connection.execute(
                    "SELECT rater, COUNT(*) FROM responses WHERE campaign_id = ? AND outcome = 'rated' "
                    "GROUP BY rater ORDER BY rater",
                    (campaign_id,),
                ).fetchall()
            )
        counts = [int(raters) for gold, raters in per_item if not gold]
        return CampaignProgress(
            items=len(counts),
            gold_items=sum(1 for gold, _ in per_item if gold),
            overlap=campaign.overlap,
            ratings_done=sum(min(count, campaign.overlap) for count in counts),
            complete_items=sum(1 for count in counts if count >= campaign.overlap),
            raters=len(by_rater),
            by_rater={str(rater): int(count) for rater, count in by_rater.items()},
        )

    def rating_rows(self, campaign_id: str) -> tuple[Campaign, list[Item], list[schema.RatingRow]]:
        """The campaign, its items and every rating, read in one consistent snapshot."""
        with self._connect() as connection:
            connection.execute("BEGIN")  # one read transaction: all three from the same snapshot
            try:
                campaign = self._campaign(connection, campaign_id)
                items = schema.load_items(connection, campaign_id)
                ratings = schema.load_ratings(connection, campaign_id)
            finally:
                connection.execute("COMMIT")
        return campaign, items, ratings
