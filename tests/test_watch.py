"""`harness watch`: each complete checkpoint is evaluated exactly once, including ones that appear later."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import struct
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.store import ResultStore
from harness.watch import WatchSettings, _Watcher, checkpoint_is_complete, find_checkpoints, watch

TASK = "harness_reading_mc"


def safetensors_bytes() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(16)


def make_checkpoint(folder: Path, *, weights: bytes | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(safetensors_bytes() if weights is None else weights)
    return folder


def settings(directory: Path, store: Path, **changes: Any) -> WatchSettings:
    base = WatchSettings(
        directory=directory,
        tasks=(TASK,),
        adapter="mock",
        store=store,
        limit=3,
        bootstrap_resamples=0,
        poll_seconds=0.02,
        settle_seconds=0,
    )
    return dataclasses.replace(base, **changes)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_completeness_checks(tmp_path: Path) -> None:
    whole = safetensors_bytes()
    assert checkpoint_is_complete(make_checkpoint(tmp_path / "ok"))
    assert not checkpoint_is_complete(make_checkpoint(tmp_path / "half", weights=whole[:-5]))
    no_config = make_checkpoint(tmp_path / "no-config")
    (no_config / "config.json").unlink()
    assert not checkpoint_is_complete(no_config)
    sharded = make_checkpoint(tmp_path / "sharded")
    index = {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert not checkpoint_is_complete(sharded)
    (sharded / "model-00002-of-00002.safetensors").write_bytes(whole)
    assert checkpoint_is_complete(sharded)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("archive/data.pkl", b"x" * 100)
    torch_bin = tmp_path / "bin"
    make_checkpoint(torch_bin)
    (torch_bin / "pytorch_model.bin").write_bytes(archive.getvalue()[:-30])  # central directory missing
    assert not checkpoint_is_complete(torch_bin)
    (torch_bin / "pytorch_model.bin").write_bytes(archive.getvalue())
    assert checkpoint_is_complete(torch_bin)


def test_checkpoints_appearing_while_watching_are_each_evaluated_once(tmp_path: Path) -> None:
    checkpoints, store = tmp_path / "sft-run", tmp_path / "store"
    make_checkpoint(checkpoints / "checkpoint-100")
    make_checkpoint(checkpoints / "tmp-checkpoint-150")  # a trainer's folder before its rename
    (checkpoints / "logs").mkdir()  # not a checkpoint: no config or weights
    outcomes: list[object] = []
    thread = threading.Thread(
        target=lambda: outcomes.extend(
            watch(settings(checkpoints, store, max_checkpoints=3), log=io.StringIO())
        )
    )
    thread.start()

    def steps() -> list[int]:
        return sorted(int(step) for step in ResultStore(store).runs()["step"])

    wait_for(lambda: steps() == [100])
    # A checkpoint being written: config first, then weights a piece at a time.
    partial = checkpoints / "checkpoint-200"
    make_checkpoint(partial, weights=safetensors_bytes()[:10])
    time.sleep(0.3)  # many polls
    assert steps() == [100]
    (partial / "model.safetensors").write_bytes(safetensors_bytes())
    wait_for(lambda: steps() == [100, 200])
    make_checkpoint(checkpoints / "tmp-checkpoint-300")
    (checkpoints / "tmp-checkpoint-300").rename(checkpoints / "checkpoint-300")
    thread.join(timeout=20)
    assert not thread.is_alive()
    runs = ResultStore(store).runs()
    assert steps() == [100, 200, 300]
    assert set(runs["experiment"]) == {"sft-run"}
    assert [getattr(outcome, "status", None) for outcome in outcomes] == ["evaluated"] * 3

    # A restarted watcher (here a single pass from the command line) finds them all in the store.
    again = watch(settings(checkpoints, store, once=True), log=io.StringIO())
    assert [outcome.status for outcome in again] == ["skipped"] * 3
    args = ["watch", str(checkpoints), "--adapter", "mock", "--tasks", TASK, "--limit", "3"]
    assert main([*args, "--store", str(store), "--once", "--settle-seconds", "0"]) == 0
    assert len(ResultStore(store).runs()) == 3


def test_a_folder_must_stay_unchanged_for_settle_seconds(tmp_path: Path) -> None:
    checkpoints = tmp_path / "ckpts"
    folder = make_checkpoint(checkpoints / "step_5")
    watcher = _Watcher(settings(checkpoints, tmp_path / "store", settle_seconds=10), io.StringIO())
    assert watcher.ready(now=0.0) == []
    assert watcher.ready(now=9.0) == []
    (folder / "extra.json").write_text("{}")  # still being written: the clock starts again
    assert watcher.ready(now=11.0) == []
    assert watcher.ready(now=20.0) == []
    assert watcher.ready(now=21.0) == [folder]
    assert find_checkpoints(checkpoints) == [folder]


def test_identical_weights_are_evaluated_once_and_bad_checkpoints_do_not_stop_the_watcher(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoints, store = tmp_path / "ckpts", tmp_path / "store"
    shutil.copytree(tiny_model_dir, checkpoints / "checkpoint-1")
    shutil.copytree(tiny_model_dir, checkpoints / "checkpoint-2")  # same weights, e.g. a copied folder
    make_checkpoint(checkpoints / "checkpoint-3")  # complete on disk, but no loadable model
    args = ["watch", str(checkpoints), "--tasks", TASK, "--limit", "2", "--store", str(store), "--once"]
    assert main([*args, "--settle-seconds", "0", "--experiment", "tiny"]) == 2
    log = capsys.readouterr().err
    assert "evaluated checkpoint-1" in log and "skipped checkpoint-2" in log and "failed checkpoint-3" in log
    runs = ResultStore(store).runs()
    assert list(runs["step"]) == [1] and list(runs["experiment"]) == ["tiny"]


def test_watching_a_missing_folder_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", str(tmp_path / "nope"), "--adapter", "mock", "--tasks", TASK, "--once"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_watch_tags_every_run_it_stores(tmp_path: Path) -> None:
    checkpoints, store = tmp_path / "ckpts", tmp_path / "store"
    make_checkpoint(checkpoints / "checkpoint-10")
    make_checkpoint(checkpoints / "checkpoint-20")
    args = [
        "watch",
        str(checkpoints),
        "--adapter",
        "mock",
        "--tasks",
        TASK,
        "--limit",
        "3",
        "--store",
        str(store),
    ]
    assert main([*args, "--once", "--settle-seconds", "0", "--tag", "nightly"]) == 0
    runs = ResultStore(store).run_records()
    assert [run.step for run in runs] == [10, 20] and {run.tags for run in runs} == {("nightly",)}
    assert all(run.provenance.settings.limit == 3 for run in runs)
