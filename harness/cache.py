"""A sample-level request cache: one SQLite file shared by every process evaluating models.

Rows are keyed by (model fingerprint, `request_key(request)`), so a result is reused only for the
exact same request to a model with the same weights and scoring settings. WAL mode lets readers
proceed while one process writes, and the busy timeout makes concurrent writers queue instead of
failing. The cache holds nothing that cannot be recomputed, so a broken file can simply be deleted.

A cache may also read other cache files (`also_read`): the answers that shards of one run wrote into
caches of their own (harness.shards), looked up after this file's own. A small `models` table names the
model behind each fingerprint, so merging the caches of different models fails with names, not hashes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from harness.errors import HarnessError
from harness.requests import (
    RESULT_TYPES,
    Request,
    Result,
    request_key,
    result_from_json,
    result_to_json,
)
from harness.sqlite_wal import enable_wal

__all__ = ["RequestCache"]

BUSY_TIMEOUT_S = 30.0
# Well under SQLite's bound-parameter limit, and large enough that 10k lookups take ~20 queries.
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    fingerprint TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, key)
) WITHOUT ROWID
"""

_MODELS_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    fingerprint TEXT PRIMARY KEY,
    name TEXT NOT NULL
) WITHOUT ROWID
"""

_CORRUPT_CODES = {
    getattr(sqlite3, "SQLITE_CORRUPT", 11),
    getattr(sqlite3, "SQLITE_NOTADB", 26),
}


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _CORRUPT_CODES:
        return True
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text


class RequestCache:
    """Results of model requests, by model fingerprint; opened lazily, safe across processes."""

    def __init__(self, path: str | Path, *, also_read: Sequence[str | Path] = ()) -> None:
        self.path = Path(path)
        # Read after this file's own answers; never written.
        self._also_read = [RequestCache(other) for other in also_read]
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        # One connection per cache object may be used from the runner's worker threads.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"RequestCache({str(self.path)!r})"

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
        for other in self._also_read:
            other.close()

    def sources(self) -> list[RequestCache]:
        """This cache and the ones it also reads, in lookup order."""
        return [self, *self._also_read]

    def _connect(self) -> sqlite3.Connection:
        # A connection inherited through fork must not be used by the child; open a fresh one.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit, so writes can take the lock up front.
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            enable_wal(conn, BUSY_TIMEOUT_S)
            conn.execute(_SCHEMA)
            conn.execute(_MODELS_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, with SQLite errors turned into one-line user errors."""
        with self._lock:
            try:
                yield self._connect()
            except sqlite3.Error as exc:
                if _is_corruption(exc):
                    self.close()
                    raise HarnessError(
                        f"request cache {self.path} is corrupt ({exc}); it only holds cached model "
                        f"outputs and can be deleted safely"
                    ) from exc
                if isinstance(exc, sqlite3.OperationalError):
                    raise HarnessError(f"cannot use request cache {self.path}: {exc}") from exc
                raise

    def lookup(self, fingerprint: str, requests: Sequence[Request]) -> list[Result | None]:
        """Cached results in request order, None where a request has not been seen."""
        keys = [request_key(request) for request in requests]
        unique = list(dict.fromkeys(keys))
        found: dict[str, tuple[str, str]] = {}
        with self._session() as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, kind, result FROM results WHERE fingerprint = ? AND key IN ({marks})",
                    [fingerprint, *chunk],
                )
                for key, kind, payload in rows:
                    found[key] = (kind, payload)
        results: list[Result | None] = []
        for request, key in zip(requests, keys, strict=True):
            hit = found.get(key)
            # The key already hashes the kind; checking again guards against a hand-edited file.
            if hit is None or hit[0] != request.kind:
                results.append(None)
            else:
                results.append(result_from_json(request.kind, hit[1]))
        for other in self._also_read:
            missing = [index for index, result in enumerate(results) if result is None]
            if not missing:
                break
            found_there = other.lookup(fingerprint, [requests[index] for index in missing])
            for index, result in zip(missing, found_there, strict=True):
                results[index] = result
        return results

    def label(self, fingerprint: str, name: str) -> None:
        """Name the model behind a fingerprint (kept with its answers, for messages about them)."""
        with self._session() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO models (fingerprint, name) VALUES (?, ?)", (fingerprint, name)
            )

    def models(self) -> dict[str, str | None]:
        """The fingerprints this file holds answers (or a label) for, with the model's name if known."""
        with self._session() as conn:
            held: dict[str, str | None] = {
                row[0]: None for row in conn.execute("SELECT DISTINCT fingerprint FROM results")
            }
            held.update(dict(conn.execute("SELECT fingerprint, name FROM models").fetchall()))
        return held

    def store(self, fingerprint: str, requests: Sequence[Request], results: Sequence[Result]) -> None:
        """Save results for requests (same order) in one transaction, replacing older entries."""
        if len(requests) != len(results):
            raise ValueError(f"{len(requests)} requests but {len(results)} results")
        now = time.time()
        rows = []
        for request, result in zip(requests, results, strict=True):
            expected = RESULT_TYPES[request.kind]
            if not isinstance(result, expected):
                raise ValueError(
                    f"a {request.kind} request needs a {expected.__name__}, got {type(result).__name__}"
                )
            rows.append((fingerprint, request_key(request), request.kind, result_to_json(result), now))
        if not rows:
            return
        with self._session() as conn:
            # IMMEDIATE takes the write lock now, so the busy timeout applies; a deferred
            # transaction upgrading from read to write can fail at once with "database is locked".
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO results (fingerprint, key, kind, result, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def count(self, fingerprint: str | None = None) -> int:
        """Number of cached results, for one model fingerprint or for all."""
        with self._session() as conn:
            if fingerprint is None:
                row = conn.execute("SELECT COUNT(*) FROM results").fetchone()
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM results WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()
        return int(row[0])
