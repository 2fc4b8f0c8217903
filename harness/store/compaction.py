"""`compact_store`: merging committed runs' small part files into packs (`harness.store.packs`), safely
while writers keep writing and readers keep reading.

A store grows by three files per run, and reading it costs per file, not per byte. Compaction copies
the rows of committed runs into a few pack files and then removes the loose parts. Each step leaves
a valid store if the process is killed right after it:

1. take `_compaction/lock`, so one compaction at a time works on a store;
2. finish what a killed compaction left: loose parts already held by a live pack, the files and
   manifests of replaced packs, pack files that no manifest names (never committed);
3. list the committed runs (`runs` parts first, then the other tables: a writer writes its runs part
   last, so every part of a listed run is there) and group them, with the live packs smaller than
   `runs_per_pack`, into groups of at most `runs_per_pack` runs;
4. per group: write the samples, scores and runs pack files (invisible while no manifest names
   them), then the manifest, which commits them;
5. after a short grace (readers that listed the old files just before a commit finish reading
   them), remove the loose parts and packs the new packs replace, as in step 2.

A loose part that cannot be read stays where it is (`harness store check` reports it); its run keeps
its other rows in the pack. Nothing is deleted that a committed pack does not hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.files import atomic_write
from harness.store.layout import RUNS_SCHEMA, SCHEMAS, new_run_id, part_name, run_id_of, validate_store
from harness.store.location import is_remote, uri
from harness.store.packs import (
    MANIFEST_DIR,
    PACKED_TABLES,
    Pack,
    PackSet,
    manifest_path,
    pack_id_of,
    pack_name,
    read_pack_set,
)
from harness.store.reader import PartVanished, check_runs_parts, part_entries, read_parts

__all__ = ["DEFAULT_GRACE_S", "DEFAULT_RUNS_PER_PACK", "CompactionResult", "compact_store"]

DEFAULT_RUNS_PER_PACK = 1000
DEFAULT_GRACE_S = 5.0
LOCK_NAME = "lock"
FLOCK_NAME = ".lock.flock"  # never removed: removing a lock file others may hold open defeats it
_BATCH = 200  # loose parts read (and written as one row group) at a time: bounds memory


@dataclass(frozen=True)
class CompactionResult:
    """What `compact_store` did: packs committed, runs they hold, files removed, files left."""

    root: Path
    packs: tuple[str, ...] = ()
    runs: int = 0
    removed: int = 0
    files_before: int = 0
    files_after: int = 0


def _store_files(root: Path) -> int:
    return sum(len(part_entries(root, table)) for table in PACKED_TABLES) + sum(
        1 for table in PACKED_TABLES for name in _names(root / table) if pack_id_of(name)
    )


def _names(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(directory))
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: running, as another user
        return True
    return True


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold `_compaction/lock` (created exclusively); a lock whose process is gone is taken over."""
    directory = root / MANIFEST_DIR
    directory.mkdir(exist_ok=True)
    # The kernel's advisory lock serialises compactions on this machine, the take-over of a dead
    # holder's lock file below included (two compactions that both found it dead would otherwise both
    # run); it is released when the process ends however it ends. The lock file itself says who holds
    # it, and keeps out compactions that do not share this kernel's locks.
    gate = open(directory / FLOCK_NAME, "a")  # noqa: SIM115 - held open for the whole compaction
    try:
        fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        gate.close()
        raise HarnessError(f"another compaction of {root} is running") from None
    try:
        with _lock_file(root, directory / LOCK_NAME):
            yield
    finally:
        gate.close()


@contextlib.contextmanager
def _lock_file(root: Path, lock: Path) -> Iterator[None]:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            try:
                other = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                other = {}
            same_host = other.get("host") == holder["host"]
            if same_host and isinstance(other.get("pid"), int) and not _alive(other["pid"]):
                lock.unlink(missing_ok=True)  # its compaction was killed: step 2 cleans up after it
                continue
            raise HarnessError(
                f"another compaction of {root} is running (pid {other.get('pid')} on "
                f"{other.get('host')} since {other.get('since')}); if it is not, remove {lock}"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(holder) + "\n")
        break
    else:
        raise HarnessError(f"cannot take the compaction lock {lock}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _remove(path: str | Path) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return 1


def _finish_earlier(root: Path, packs: PackSet) -> int:
    """Remove what killed compactions left: copies of rows a live pack holds, and uncommitted packs."""
    removed = 0
    for pack in packs.live:
        for table in PACKED_TABLES:
            removed += sum(_remove(root / table / part_name(run_id)) for run_id in pack.holds(table))
    for pack in packs.replaced:
        # The files first: while the manifest is there, they are known to be replaced.
        removed += sum(_remove(pack.path(root, table)) for table in PACKED_TABLES)
        removed += _remove(manifest_path(root, pack.pack_id))
    named = {pack.pack_id for pack in (*packs.live, *packs.replaced)} | packs.damaged_ids
    for table in PACKED_TABLES:
        for name in _names(root / table):
            pack_id = pack_id_of(name)
            if pack_id is not None and pack_id not in named:
                removed += _remove(root / table / name)  # written, never committed: we hold the lock
    return removed


@dataclass(frozen=True)
class _Group:
    run_ids: tuple[str, ...]  # loose runs
    packs: tuple[Pack, ...]  # small live packs merged in


def _groups(loose: Sequence[str], packs: Sequence[Pack], runs_per_pack: int) -> list[_Group]:
    small = [pack for pack in packs if len(pack.holds("runs")) < runs_per_pack]
    groups: list[_Group] = []
    ids: list[str] = []
    chosen: list[Pack] = []
    size = 0
    for pack in small:
        count = len(pack.holds("runs"))
        if size and size + count > runs_per_pack:
            groups.append(_Group(tuple(ids), tuple(chosen)))
            ids, chosen, size = [], [], 0
        chosen.append(pack)
        size += count
    for run_id in loose:
        if size >= runs_per_pack:
            groups.append(_Group(tuple(ids), tuple(chosen)))
            ids, chosen, size = [], [], 0
        ids.append(run_id)
        size += 1
    if size:
        groups.append(_Group(tuple(ids), tuple(chosen)))
    # A lone pack with nothing to add is already as compact as it gets.
    return [group for group in groups if group.run_ids or len(group.packs) > 1]


def _write_pack_file(
    root: Path, table: str, pack_id: str, group: _Group, runs_rows: pa.Table | None
) -> frozenset[str]:
    """Write the group's rows of `table` to its pack file; returns the runs whose rows it holds."""
    schema = SCHEMAS[table]
    held: set[str] = set()
    sources: list[pa.Table] = []
    for pack in group.packs:
        if pack.holds(table):
            rows, bad = read_parts(schema, [pack.path(root, table)])
            if bad:
                raise HarnessError(f"cannot compact: the {table} pack {pack.name} is damaged ({bad[0]})")
            sources.append(rows)
            held.update(pack.holds(table))
    if runs_rows is not None:
        sources.append(runs_rows)
        held.update(str(run_id) for run_id in runs_rows.column("run_id").to_pylist())
    directory = root / table
    loose_paths = [] if runs_rows is not None else [str(directory / part_name(i)) for i in group.run_ids]
    present = [path for path in loose_paths if os.path.isfile(path)]
    if not held and not present:
        return frozenset()

    def write(handle: BinaryIO) -> None:
        with pq.ParquetWriter(handle, schema) as writer:
            for rows in sources:
                writer.write_table(rows)
            for start in range(0, len(present), _BATCH):
                batch = present[start : start + _BATCH]
                rows, bad = read_parts(schema, batch)
                unreadable = {item.partition(": ")[0] for item in bad}
                writer.write_table(rows)
                for path in batch:
                    name = os.path.basename(path)
                    if name not in unreadable:
                        held.add(run_id_of(name) or "")

    atomic_write(directory / pack_name(pack_id), write)
    return frozenset(held)


def _compact_group(root: Path, group: _Group, runs_rows: pa.Table) -> Pack:
    pack_id = new_run_id()
    held: dict[str, frozenset[str]] = {}
    # Runs last, as a writer does; the manifest after all three is what commits them.
    for table in ("samples", "scores"):
        held[table] = _write_pack_file(root, table, pack_id, group, None)
    held["runs"] = _write_pack_file(root, "runs", pack_id, group, runs_rows)
    pack = Pack(
        pack_id=pack_id,
        run_ids=held,
        replaces=tuple(p.pack_id for p in group.packs),
        created_at=datetime.now(UTC).isoformat(),
    )
    atomic_write(Path(manifest_path(root, pack_id)), lambda handle: handle.write(pack.to_json().encode()))
    return pack


def compact_store(
    root: str | Path, *, runs_per_pack: int = DEFAULT_RUNS_PER_PACK, grace_s: float = DEFAULT_GRACE_S
) -> CompactionResult:
    """Merge the loose parts of committed runs (and small packs) into packs of up to `runs_per_pack`
    runs. Safe while writers and readers work; HarnessError when another compaction holds the lock.

    The files the new packs replace are removed `grace_s` seconds after the last commit: a reader
    that listed them just before sees them through its read instead of having to list again."""
    if is_remote(root):
        raise HarnessError(f"compaction works on local stores only for now, not on {uri(root)}")
    path = Path(root)
    if runs_per_pack < 1:
        raise HarnessError(f"runs per pack must be at least 1, not {runs_per_pack}")
    if not validate_store(path):
        raise HarnessError(f"no results store at {path}")
    before = _store_files(path)
    try:
        with _locked(path):
            written, count, removed = _compact_locked(path, runs_per_pack, grace_s)
    except PartVanished as error:  # `harness store check --repair` moved a part meanwhile
        raise HarnessError(f"a part of {path} was moved during compaction ({error}); run it again") from None
    return CompactionResult(path, tuple(written), count, removed, before, _store_files(path))


def _compact_locked(path: Path, runs_per_pack: int, grace_s: float) -> tuple[list[str], int, int]:
    """Steps 2 to 5 above, with the lock held: the packs committed, runs packed, files removed."""
    found = read_pack_set(path)
    if found.damaged:
        # Its pack may hold the only copy of its runs: nothing is merged or removed until it is dealt with.
        name, _, reason = found.damaged[0].partition(": ")
        raise HarnessError(
            f"cannot compact {path}: the manifest {path / MANIFEST_DIR / name} is damaged ({reason}); "
            f"`harness store check --store {path} --repair` moves it and its pack aside"
        )
    removed = _finish_earlier(path, found)
    # Runs parts first: every other part of a run listed here is already written.
    listed = [run_id_of(name) for _, name, _, _ in part_entries(path, "runs")]
    packs = read_pack_set(path)
    loose = sorted(run_id for run_id in listed if run_id and run_id not in packs.packed("runs"))
    paths = [str(path / "runs" / part_name(run_id)) for run_id in loose]
    # A damaged runs part keeps its run out (loose): `harness store check` deals with it.
    runs_rows, _ = read_parts(RUNS_SCHEMA, paths, check=check_runs_parts)
    runs_rows = runs_rows.sort_by([("created_at", "ascending"), ("run_id", "ascending")])
    committed = [str(run_id) for run_id in runs_rows.column("run_id").to_pylist()]
    written: list[str] = []
    count = 0
    for group in _groups(committed, packs.live, runs_per_pack):
        members = set(group.run_ids)
        mask = pa.array([run_id in members for run_id in committed], type=pa.bool_())
        pack = _compact_group(path, group, runs_rows.filter(mask))
        written.append(pack.pack_id)
        count += len(group.run_ids)
    if written:
        time.sleep(grace_s)
        removed += _finish_earlier(path, read_pack_set(path))
    return written, count, removed
