from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cache import RequestCache
from harness.errors import HarnessError
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
    Result,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)


def sample_pairs() -> tuple[list[Request], list[Result]]:
    requests: list[Request] = [
        LoglikelihoodRequest("Question: 2+2?\nAnswer:", " 4"),
        RollingLoglikelihoodRequest("a long text for perplexity ✓"),
        GenerationRequest("Say hi", GenerationSettings(max_tokens=8, stop=("\n",))),
        GenerationRequest((ChatMessage("system", "be brief"), ChatMessage("user", "hi"))),
    ]
    results: list[Result] = [
        LoglikelihoodResult(logprob=-1.25, is_greedy=True, num_tokens=1),
        RollingLoglikelihoodResult(logprob=-123.456789, num_tokens=9),
        GenerationResult(text="hi there ✓", num_tokens=3),
        GenerationResult(text="hello", num_tokens=1),
    ]
    return requests, results


def test_round_trip_all_kinds(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "cache.sqlite"
    requests, results = sample_pairs()
    with RequestCache(path) as cache:
        assert not path.exists()  # nothing is created until first use
        assert cache.lookup("fp", requests) == [None] * 4
        cache.store("fp", requests, results)
        assert cache.count("fp") == 4
    # A fresh object (a later run) sees the same results, with exact types and values.
    with RequestCache(path) as cache:
        got = cache.lookup("fp", requests)
    assert got == results
    assert [type(r) for r in got] == [type(r) for r in results]


def test_lookup_keeps_order_duplicates_and_misses(tmp_path: Path) -> None:
    requests, results = sample_pairs()
    unseen = LoglikelihoodRequest("never", " stored")
    with RequestCache(tmp_path / "c.sqlite") as cache:
        cache.store("fp", requests[:2], results[:2])
        got = cache.lookup("fp", [requests[1], unseen, requests[0], requests[1], requests[3]])
    assert got == [results[1], None, results[0], results[1], None]


def test_settings_are_part_of_the_key(tmp_path: Path) -> None:
    short = GenerationRequest("p", GenerationSettings(max_tokens=8))
    long = GenerationRequest("p", GenerationSettings(max_tokens=9))
    with RequestCache(tmp_path / "c.sqlite") as cache:
        cache.store("fp", [short], [GenerationResult("x", 1)])
        assert cache.lookup("fp", [short, long]) == [GenerationResult("x", 1), None]


def test_fingerprint_isolation(tmp_path: Path) -> None:
    requests, results = sample_pairs()
    with RequestCache(tmp_path / "c.sqlite") as cache:
        cache.store("model-a", requests, results)
        assert cache.lookup("model-b", requests) == [None] * 4
        other = [LoglikelihoodResult(-9.0, False, 2)]
        cache.store("model-b", requests[:1], other)
        assert cache.lookup("model-a", requests[:1]) == results[:1]
        assert cache.lookup("model-b", requests[:1]) == other
        assert (cache.count("model-a"), cache.count("model-b"), cache.count()) == (4, 1, 5)


def test_store_replaces_existing_entry(tmp_path: Path) -> None:
    request = LoglikelihoodRequest("c", " x")
    with RequestCache(tmp_path / "c.sqlite") as cache:
        cache.store("fp", [request], [LoglikelihoodResult(-1.0, True, 1)])
        cache.store("fp", [request], [LoglikelihoodResult(-2.0, False, 1)])
        assert cache.lookup("fp", [request]) == [LoglikelihoodResult(-2.0, False, 1)]
        assert cache.count() == 1


def test_store_rejects_mismatched_input(tmp_path: Path) -> None:
    requests, results = sample_pairs()
    with RequestCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(ValueError, match="requests but"):
            cache.store("fp", requests, results[:2])
        with pytest.raises(ValueError, match="LoglikelihoodResult"):
            cache.store("fp", requests[:1], results[2:3])
        assert cache.count() == 0


def test_many_lookups_are_batched_and_fast(tmp_path: Path) -> None:
    requests: list[Request] = [LoglikelihoodRequest(f"context {i}", f" {i}") for i in range(10_000)]
    results: list[Result] = [LoglikelihoodResult(-float(i), i % 2 == 0, 1) for i in range(10_000)]
    with RequestCache(tmp_path / "c.sqlite") as cache:
        cache.store("fp", requests[::2], results[::2])
        start = time.perf_counter()
        got = cache.lookup("fp", requests)
        elapsed = time.perf_counter() - start
    assert got[::2] == results[::2] and got[1::2] == [None] * 5000
    assert elapsed < 2.0


def test_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with RequestCache(path) as cache:
        cache.count()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is definitely not an sqlite database" * 200)
    requests, results = sample_pairs()
    with RequestCache(path) as cache:
        with pytest.raises(HarnessError, match="deleted safely") as info:
            cache.lookup("fp", requests)
        assert str(path) in str(info.value)
        with pytest.raises(HarnessError, match="deleted safely"):
            cache.store("fp", requests, results)
    # Deleting the file really is the fix.
    path.unlink()
    with RequestCache(path) as cache:
        cache.store("fp", requests, results)
        assert cache.count() == 4


def _write_entries(path: str, worker: int, count: int, barrier: Any) -> None:
    cache = RequestCache(path)
    barrier.wait()
    # Many small transactions interleave with the other writer far more than one big one would.
    for start in range(0, count, 50):
        requests: list[Request] = [
            LoglikelihoodRequest(f"w{worker}", f" {i}") for i in range(start, start + 50)
        ]
        results: list[Result] = [
            LoglikelihoodResult(-float(i), False, worker) for i in range(start, start + 50)
        ]
        cache.store("fp", requests, results)
        cache.lookup("fp", requests)
    cache.close()


def test_two_processes_writing_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "cache.sqlite")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_entries, args=(path, w, 1000, barrier)) for w in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    with RequestCache(path) as cache:
        assert cache.count("fp") == 2000
        for worker in range(2):
            requests: list[Request] = [LoglikelihoodRequest(f"w{worker}", f" {i}") for i in range(1000)]
            got = cache.lookup("fp", requests)
            assert got == [LoglikelihoodResult(-float(i), False, worker) for i in range(1000)]
