"""Compaction: packs replace many runs' part files while writers write and readers read, and every
run stays visible exactly once, whatever point a compaction is killed at."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

import harness.store.compaction as compaction
from harness.errors import HarnessError
from harness.store import (
    Provenance,
    ResultStore,
    RunRecord,
    SampleRecord,
    ScoreRecord,
    check_store,
    compact_store,
    list_store,
    load_samples,
    load_store,
    new_run_id,
)

T0 = datetime(2026, 11, 21, 13, 25, 1, tzinfo=UTC)


def _write(store: ResultStore, run_id: str, offset_s: int) -> None:
    run = RunRecord(
        run_id=run_id,
        created_at=T0 + timedelta(seconds=offset_s),
        model=f"model-{offset_s % 3}",
        model_fingerprint="fp",
        experiment="exp",
        step=offset_s,
        tasks=("a", "b"),
        provenance=Provenance.from_dict({"seed": 0}),
        status="completed",
    )
    scores = [
        ScoreRecord(run_id, task, "1", "acc", 0.5, 0.1, 0.3, 0.7, 3, True, "sig") for task in ("a", "b")
    ]
    samples = [
        SampleRecord(run_id, task, doc, f"q{doc}", "t", "p", None, {"acc": 1.0}, None, {})
        for task in ("a", "b")
        for doc in range(3)
    ]
    store.write_run(run, scores, samples)


def _writer(root: str, worker: int, count: int, barrier: Any, out: str) -> None:
    store = ResultStore(root)
    barrier.wait()
    written = []
    for index in range(count):
        run_id = new_run_id()
        _write(store, run_id, worker * 1000 + index)
        written.append(run_id)
    Path(out).write_text(json.dumps(written), encoding="utf-8")


def _check_once(root: str, seen: set[str]) -> set[str]:
    """One read through each reader: every run once, with all its rows, and no run seen before gone.

    Each read lists the committed runs afresh, so later reads may hold runs committed meanwhile."""
    store = ResultStore(root)
    runs = store.runs()
    ids = set(runs["run_id"])
    assert runs["run_id"].is_unique, "a run read twice"
    assert seen <= ids, f"runs went missing: {sorted(seen - ids)[:3]}"
    listed = load_store(list_store(root))
    assert listed.error is None, listed.error
    for frame, rows in ((store.scores(), 2), (store.samples(), 6), (listed.scores, 2)):
        per_run = frame.groupby("run_id").size()
        assert ids <= set(per_run.index), f"rows went missing: {sorted(ids - set(per_run.index))[:3]}"
        assert (per_run == rows).all(), f"rows read twice or missing: {per_run[per_run != rows].head(3)}"
    data = load_store(list_store(root))
    assert data.runs["run_id"].is_unique and set(data.runs["run_id"]) >= ids and not data.problems
    return ids


def _reader(root: str, stop: Any, out: str) -> None:
    seen: set[str] = set()
    reads = 0
    try:
        while not stop.is_set():
            seen = _check_once(root, seen)
            reads += 1
        seen = _check_once(root, seen)
    except AssertionError as error:
        Path(out).write_text(json.dumps({"error": str(error)}), encoding="utf-8")
        raise
    Path(out).write_text(json.dumps({"reads": reads + 1, "runs": len(seen)}), encoding="utf-8")


def test_compaction_while_four_writers_and_a_reader_work(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    _write(ResultStore(root), "before-0", 0)  # the store exists before anyone starts
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(5)
    stop = ctx.Event()
    writers = [
        ctx.Process(target=_writer, args=(root, w, 25, barrier, str(tmp_path / f"w{w}.json")))
        for w in range(4)
    ]
    reader = ctx.Process(target=_reader, args=(root, stop, str(tmp_path / "reader.json")))
    for process in (*writers, reader):
        process.start()
    barrier.wait()
    compactions = 0
    while any(writer.is_alive() for writer in writers):
        compact_store(root, runs_per_pack=8, grace_s=0.5)
        compactions += 1
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0
    compact_store(root, runs_per_pack=8, grace_s=0.5)
    stop.set()
    reader.join(timeout=60)
    report = json.loads((tmp_path / "reader.json").read_text(encoding="utf-8"))
    assert reader.exitcode == 0, report
    assert compactions >= 2 and report["reads"] >= 2, (compactions, report)

    written = {"before-0"}
    for w in range(4):
        written.update(json.loads((tmp_path / f"w{w}.json").read_text(encoding="utf-8")))
    assert len(written) == 101
    assert _check_once(root, written) == written
    # Everything ended up in packs: no loose part is left, and the result reads without harness too.
    assert not list((Path(root) / "runs").glob("part-*"))
    relation = duckdb.sql(f"SELECT count(*), count(DISTINCT run_id) FROM '{root}/runs/*.parquet'")
    assert relation is not None and relation.fetchall() == [(101, 101)]
    assert check_store(root).clean


class _Killed(BaseException):
    """Stands for SIGKILL at one step: nothing after it runs, no `except Exception` catches it."""


def _store_of(tmp_path: Path, runs: int) -> tuple[str, set[str]]:
    root = str(tmp_path / "store")
    store = ResultStore(root)
    ids = {f"run-{index:03d}" for index in range(runs)}
    for index, run_id in enumerate(sorted(ids)):
        _write(store, run_id, index)
    return root, ids


def _steps() -> list[tuple[str, int]]:
    # A compaction of 5 new runs and a pack of 1 into 2 packs writes 8 files (3 pack files and a
    # manifest each), then removes 15 loose parts and the old pack's 3 files and manifest:
    # killed before each write, and before the first, second, a middle and the last removal.
    return [("atomic_write", n) for n in range(8)] + [("_remove", n) for n in (0, 1, 9, 18)]


@pytest.mark.parametrize(("step", "after"), _steps())
def test_a_compaction_killed_at_any_step_leaves_every_run_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, after: int
) -> None:
    root, ids = _store_of(tmp_path, 9)
    compact_store(root, runs_per_pack=4, grace_s=0)  # packs of 4, 4 and 1
    for index in range(9, 14):
        _write(ResultStore(root), f"run-{index:03d}", index)
        ids.add(f"run-{index:03d}")
    real = getattr(compaction, step)
    calls = {"n": 0}

    def dies(*args: Any, **kwargs: Any) -> Any:
        # Removals count only when there is something to remove: cleanup also tries files long gone.
        if step == "atomic_write" or os.path.exists(args[0]):
            if calls["n"] == after:
                raise _Killed
            calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(compaction, step, dies)
    with pytest.raises(_Killed):
        compact_store(root, runs_per_pack=4, grace_s=0)
    monkeypatch.undo()
    assert _check_once(root, ids) == ids
    assert len(load_samples(root, "run-012")) == 6
    assert not check_store(root).of_kind("damaged")

    compact_store(root, runs_per_pack=4, grace_s=0)  # finishes the job and removes what the kill left
    assert _check_once(root, ids) == ids
    assert check_store(root, stale_after=timedelta(0)).clean
    loose = [path for table in ("runs", "scores", "samples") for path in (Path(root) / table).iterdir()]
    assert all(path.name.startswith("pack-") for path in loose)


def test_a_killed_compactions_lock_is_taken_over(tmp_path: Path) -> None:
    root, ids = _store_of(tmp_path, 6)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    lock = Path(root) / "_compaction" / "lock"
    lock.parent.mkdir()
    host = os.uname().nodename
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": host, "since": "then"}), encoding="utf-8")
    result = compact_store(root, runs_per_pack=10, grace_s=0)
    assert result.runs == 6 and len(result.packs) == 1 and not lock.exists()

    # A live holder is respected: the second compaction says so and touches nothing.
    lock.write_text(json.dumps({"pid": os.getpid(), "host": host, "since": "now"}), encoding="utf-8")
    with pytest.raises(HarnessError, match="another compaction"):
        compact_store(root)
    assert _check_once(root, ids) == ids


def test_compacted_runs_read_like_loose_ones(tmp_path: Path) -> None:
    root, ids = _store_of(tmp_path, 5)
    before = load_store(list_store(root))
    compact_store(root, grace_s=0)
    store = ResultStore(root)
    listing = list_store(root)
    after = load_store(listing)
    assert after.runs.equals(before.runs) and after.scores.equals(before.scores)
    assert set(listing.run_ids("samples")) == ids and listing.run_stamp("run-001")
    assert len(store.scores("run-003")) == 2 and len(store.samples("run-003", task="a")) == 3
    with pytest.raises(HarnessError, match="already exists"):
        _write(store, "run-002", 0)  # its runs part is gone, but the run is still there
    # New runs after a compaction are read from their parts, next to the packs.
    _write(store, "run-new", 99)
    assert len(store.runs()) == 6 and store.runs()["run_id"].iloc[-1] == "run-new"


def test_a_damaged_pack_is_reported_and_moved_aside(tmp_path: Path) -> None:
    root, _ = _store_of(tmp_path, 4)
    result = compact_store(root, grace_s=0)
    pack = Path(root) / "scores" / f"pack-{result.packs[0]}.parquet"
    pack.write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="damaged scores part"):
        assert ResultStore(root).scores().empty
    found = check_store(root)
    assert {(f.kind, f.path.name) for f in found.findings} == {
        ("damaged", pack.name),
        ("damaged", f"manifest-{result.packs[0]}.json"),
    }
    repaired = check_store(root, repair=True)
    assert repaired.repaired and check_store(root).clean


def test_store_compact_command(tmp_path: Path) -> None:
    root, _ = _store_of(tmp_path, 7)
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "store", "compact", "--store", root, "--runs-per-pack", "3"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "packed 7 new run(s) into 3 pack(s)" in done.stdout and "21 -> 9 table files" in done.stdout
    checked = subprocess.run(
        [sys.executable, "-m", "harness.cli", "store", "check", "--store", root],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0 and "clean (7 runs" in checked.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "harness.cli", "store", "compact", "--store", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no results store" in bad.stderr
