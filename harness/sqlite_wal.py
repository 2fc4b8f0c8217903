"""SQLite in WAL mode, shared by the request cache and the ratings database."""

from __future__ import annotations

import sqlite3
import time


def enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """WAL journal with NORMAL sync (survives any process crash).

    Switching a new file to WAL while another process does the same can fail at once with "database is
    locked": SQLite's busy handler does not cover that step, so it is retried here until `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
