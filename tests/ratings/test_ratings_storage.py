"""The ratings database: exactly-once submissions under concurrency, the queue, and bad input."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from harness.ratings import VOTES, RatingsBusyError, RatingsDB, RatingsError, normalise_rater
from harness.ratings.schema import SCHEMA_VERSION
from tests.ratings.test_ratings_support import simple_campaign

PROCESSES = 8
PER_PROCESS = 500


def _vote(rater: str, item_id: str) -> str:
    # Deterministic per (rater, item), so whichever of two racing submissions wins stores this vote.
    return VOTES[hashlib.sha256(f"{rater}/{item_id}".encode()).digest()[0] % len(VOTES)]


def _submit_many(
    path: str, index: int, barrier: Barrier, results: multiprocessing.Queue[tuple[int, int, int]]
) -> None:
    db = RatingsDB(path, timeout=30.0)
    rater, neighbour = f"rater-{index}", f"rater-{(index + 1) % PROCESSES}"
    saved = repeated = 0
    barrier.wait()
    for number in range(PER_PROCESS):
        item_id = f"item-{number:04d}"
        served = ("run-a", "run-b") if number % 2 else ("run-b", "run-a")
        answers = {"preference": _vote(rater, item_id)}
        # Every 5th rating is submitted twice in a row (a double click) ...
        for _ in range(2 if number % 5 == 0 else 1):
            result = db.submit("load", rater, item_id, answers, display_order=served)
            saved, repeated = saved + result.saved, repeated + (not result.saved)
        # ... and every 10th is also submitted for the neighbouring process's rater (a second tab),
        # racing that process's own submission of the same rating.
        if number % 10 == 0:
            other = {"preference": _vote(neighbour, item_id)}
            result = db.submit("load", neighbour, item_id, other, display_order=served)
            saved, repeated = saved + result.saved, repeated + (not result.saved)
    results.put((index, saved, repeated))


def test_eight_processes_submit_4000_ratings_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "ratings.sqlite"
    db = RatingsDB(path)
    simple_campaign(db, "load", PER_PROCESS, overlap=PROCESSES, mode="pairwise")
    for index in range(PROCESSES):
        db.register_rater("load", f"rater-{index}")
    with sqlite3.connect(path) as connection:
        # Every item handed to every rater up front (the queue would hand them out one at a time),
        # so the processes race on submissions alone.
        connection.executemany(
            "INSERT INTO assignments (campaign_id, rater, item_id, created_at) VALUES (?, ?, ?, ?)",
            [
                ("load", f"rater-{index}", f"item-{number:04d}", "2026-01-01T00:00:00+00:00")
                for index in range(PROCESSES)
                for number in range(PER_PROCESS)
            ],
        )
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results: multiprocessing.Queue[tuple[int, int, int]] = context.Queue()
    workers = [
        context.Process(target=_submit_many, args=(str(path), index, barrier, results))
        for index in range(PROCESSES)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    elapsed = time.monotonic() - started

    assert sum(saved for _, saved, _ in outcomes) == PROCESSES * PER_PROCESS
    # 100 double clicks per process, plus 50 cross-process races of which exactly one side saves.
    assert sum(repeated for _, _, repeated in outcomes) == PROCESSES * (PER_PROCESS // 5 + PER_PROCESS // 10)
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT rater, item_id, question, vote FROM ratings").fetchall()
        responses = connection.execute("SELECT COUNT(*) FROM responses WHERE outcome = 'rated'").fetchone()[0]
    assert len(rows) == PROCESSES * PER_PROCESS == 4000
    expected = {(f"rater-{p}", f"item-{n:04d}") for p in range(PROCESSES) for n in range(PER_PROCESS)}
    assert {(rater, item) for rater, item, _, _ in rows} == expected
    assert all(vote == _vote(rater, item) for rater, item, _, vote in rows)
    assert responses == 4000
    assert db.campaign_progress("load").complete_items == PER_PROCESS
    assert elapsed < 45, f"8 × 500 submissions took {elapsed:.1f} s"


def test_submit_twice_is_reported_and_stored_once(tmp_path: Path) -> None:
    db = RatingsDB(tmp_path / "r.sqlite")
    simple_campaign(db, "c", 3)
    rater = db.register_rater("c", "  Ann  Lee ")
    assert rater == "ann lee"
    served = db.next_item("c", rater)
    assert served is not None
    answers = {"correctness": 4, "clarity": 5}
    first = db.submit("c", rater, served.item.item_id, answers, display_order=served.display_order)
    again = db.submit(
        "c", rater, served.item.item_id, {"correctness": 1, "clarity": 1}, display_order=("run-a",)
    )
    assert first.saved and not again.saved
    assert "already rated" in again.message
    _, _, rows = db.rating_rows("c")
    assert sorted((row.question, row.value) for row in rows) == [("clarity", 5.0), ("correctness", 4.0)]
    assert db.rater_progress("c", rater).rated == 1


def test_unknown_rater_and_roster(tmp_path: Path) -> None:
    db = RatingsDB(tmp_path / "r.sqlite")
    simple_campaign(db, "c", 2)
    with pytest.raises(RatingsError, match="unknown rater 'zoe'"):
        db.submit("c", "zoe", "item-0000", {"correctness": 3, "clarity": 3}, display_order=("run-a",))
    with pytest.raises(RatingsError, match="unknown rater"):
        db.next_item("c", "zoe")
    with pytest.raises(RatingsError, match="rater name must not be empty"):
        normalise_rater("   ")
    with pytest.raises(RatingsError, match="no campaign 'nope'"):
        db.register_rater("nope", "ann")
    with sqlite3.connect(db.path) as connection:
        connection.execute("UPDATE campaigns SET roster = '[\"ann\"]'")
    assert db.register_rater("c", "ANN") == "ann"
    with pytest.raises(RatingsError, match="not on the rater list"):
        db.register_rater("c", "bob")


def test_invalid_answers_write_nothing(tmp_path: Path) -> None:
    db = RatingsDB(tmp_path / "r.sqlite")
    simple_campaign(db, "c", 1)
    rater = db.register_rater("c", "ann")
    bad: list[tuple[dict[str, object], str]] = [
        ({"correctness": 4}, "missing: clarity"),
        ({"correctness": 6, "clarity": 3}, "from 1 to 5"),
        ({"correctness": 2.5, "clarity": 3}, "from 1 to 5"),
        ({"correctness": 2, "clarity": 3, "tone": 1}, "no question 'tone'"),
    ]
    for answers, message in bad:
        with pytest.raises(RatingsError, match=message):
            db.submit("c", rater, "item-0000", answers, display_order=("run-a",))
    with pytest.raises(RatingsError, match="does not match"):
        db.submit("c", rater, "item-0000", {"correctness": 2, "clarity": 3}, display_order=("run-x",))
    with pytest.raises(RatingsError, match="no item"):
        db.submit("c", rater, "item-9", {"correctness": 2, "clarity": 3}, display_order=("run-a",))
    assert db.rating_rows("c")[2] == []


def test_queue_respects_overlap_skips_and_never_repeats(tmp_path: Path) -> None:
    db = RatingsDB(tmp_path / "r.sqlite")
    simple_campaign(db, "c", 6, overlap=2, mode="pairwise")
    raters = [db.register_rater("c", name) for name in ("cy", "ann", "bob")]
    seen: dict[str, list[str]] = {}
    orders: dict[str, set[tuple[str, ...]]] = {}
    for rater in raters:
        seen[rater] = []
        while (served := db.next_item("c", rater)) is not None:
            assert served.item.item_id not in seen[rater]
            # A rerun serves the same item in the same order until it is answered.
            assert db.next_item("c", rater) == served
            seen[rater].append(served.item.item_id)
            orders.setdefault(served.item.item_id, set()).add(served.display_order)
            if rater == "cy" and len(seen[rater]) == 1:
                db.skip("c", rater, served.item.item_id)
                continue
            vote = {"preference": "A"}
            assert db.submit("c", rater, served.item.item_id, vote, display_order=served.display_order).saved
    assert len(seen["cy"]) == len(seen["ann"]) == 6
    assert seen["ann"] != seen["cy"]  # each rater has their own random order
    # cy skipped one item, so only it still lacked a second rater when bob came.
    assert seen["bob"] == [seen["cy"][0]]
    progress = db.campaign_progress("c")
    assert (progress.items, progress.complete_items, progress.ratings_done, progress.fraction) == (
        6,
        6,
        12,
        1.0,
    )
    assert db.rater_progress("c", "cy").skipped == 1
    assert any(len(shown) == 2 for shown in orders.values())  # left/right differs between raters


def test_corrupt_and_foreign_database_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database, just text" * 100)
    with pytest.raises(RatingsError, match="not a usable ratings database"):
        RatingsDB(garbage).campaigns()
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(RatingsError, match="not a harness ratings database"):
        simple_campaign(RatingsDB(foreign), "c", 1)
    with pytest.raises(RatingsError, match="no ratings database"):
        RatingsDB(tmp_path / "missing.sqlite").campaign("c")
    newer = RatingsDB(tmp_path / "newer.sqlite")
    simple_campaign(newer, "c", 1)
    with sqlite3.connect(newer.path) as connection:
        connection.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    with pytest.raises(RatingsError, match="newer than"):
        RatingsDB(newer.path).campaigns()  # a new instance checks the file afresh


def test_locked_database_loses_nothing(tmp_path: Path) -> None:
    db = RatingsDB(tmp_path / "r.sqlite", timeout=0.2)
    simple_campaign(db, "c", 2)
    rater = db.register_rater("c", "ann")
    served = db.next_item("c", rater)
    assert served is not None
    item_id = served.item.item_id
    holder = sqlite3.connect(db.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        with pytest.raises(RatingsBusyError, match="nothing was saved, please submit again"):
            db.submit("c", rater, item_id, {"correctness": 4, "clarity": 4}, display_order=("run-a",))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert db.submit("c", rater, item_id, {"correctness": 4, "clarity": 4}, display_order=("run-a",)).saved
    assert len(db.rating_rows("c")[2]) == 2


def test_database_file_is_in_wal_mode(tmp_path: Path) -> None:
    db = RatingsDB(tmp_path / "r.sqlite")
    simple_campaign(db, "c", 1)
    with sqlite3.connect(db.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(RatingsError, match="already exists"):
        simple_campaign(db, "c", 1)
