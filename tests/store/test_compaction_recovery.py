"""Compaction's failure paths: a damaged manifest never costs its runs, compactions exclude each other
through the kernel's lock, and a run whose last write failed after landing is taken back whole."""

from __future__ import annotations

import fcntl
import os
import warnings
from pathlib import Path

import pyarrow as pa
import pytest

import harness.store.packs as packs_module
import harness.store.result_store as result_store
from harness.errors import HarnessError
from harness.store import ResultStore, check_store, compact_store, list_store, load_store, new_run_id
from harness.store.layout import part_name
from tests.store.test_compaction import _check_once, _store_of, _write


def _packs(root: str) -> list[Path]:
    return sorted(
        path for table in ("runs", "scores", "samples") for path in (Path(root) / table).glob("pack-*")
    )


def test_a_damaged_manifest_keeps_its_pack_and_is_reported(tmp_path: Path) -> None:
    root, ids = _store_of(tmp_path, 4)
    first = compact_store(root, runs_per_pack=10, grace_s=0)
    assert first.runs == 4
    packs = _packs(root)
    manifest = next((Path(root) / "_compaction").glob("manifest-*.json"))
    manifest.write_text("{not json", encoding="utf-8")
    packs_module._PARSED.clear()  # manifests are parsed once per process: read it as a new process would

    # Readers say the runs it commits are missing instead of silently showing fewer runs.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_store(list_store(root))
    assert any("damaged pack manifest" in problem for problem in data.problems)
    assert any(manifest.name in str(warning.message) for warning in caught)

    # A new run arrives; compaction refuses to merge or remove anything while the manifest is damaged.
    _write(ResultStore(root), new_run_id(), 99)
    with pytest.raises(HarnessError, match=r"manifest .* is damaged"):
        compact_store(root, runs_per_pack=10, grace_s=0)
    assert _packs(root) == packs  # the pack, the only copy of its runs' rows, is still there

    # `store check --repair` moves the manifest and its pack aside together; nothing is deleted.
    result = check_store(Path(root), repair=True)
    assert result.quarantine is not None
    moved = {path.name for path in Path(result.quarantine).rglob("*") if path.is_file()}
    assert manifest.name in moved and {path.name for path in packs} <= moved
    compact_store(root, runs_per_pack=10, grace_s=0)  # and compaction works again
    assert len(ids) == 4


def test_compactions_exclude_each_other_through_the_kernel_lock(tmp_path: Path) -> None:
    root, ids = _store_of(tmp_path, 3)
    directory = Path(root) / "_compaction"
    directory.mkdir(exist_ok=True)
    # Another process holding the kernel lock is a running compaction, whatever the lock file says.
    with open(directory / ".lock.flock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(HarnessError, match="another compaction"):
            compact_store(root, runs_per_pack=10, grace_s=0)
    assert _check_once(root, ids) == ids and not list(directory.glob("manifest-*"))
    # Released (as when its process ends, however it ends): the next compaction runs.
    assert compact_store(root, runs_per_pack=10, grace_s=0).runs == 3


def test_a_runs_part_that_lands_before_its_write_fails_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path / "store")
    store = ResultStore(root)
    kept = new_run_id()
    _write(store, kept, 0)
    real_write_part = result_store.write_part

    def lands_then_fails(location: str, table: str, run_id: str, data: pa.Table) -> None:
        real_write_part(location, table, run_id, data)
        if table == "runs":  # e.g. the folder's fsync fails, or the client gave up on a finished upload
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(result_store, "write_part", lands_then_fails)
    with pytest.raises(HarnessError, match="nothing of the run was stored"):
        _write(store, new_run_id(), 1)
    assert set(load_store(list_store(root)).runs["run_id"]) == {kept}
    assert sorted(os.listdir(Path(root) / "runs")) == [part_name(kept)]
    assert len(os.listdir(Path(root) / "scores")) == len(os.listdir(Path(root) / "samples")) == 1
