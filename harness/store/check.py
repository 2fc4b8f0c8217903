"""`check_store`: what in a results store no reader can use, and, on request, moving it aside.

Three kinds of file are found:

* damaged parts: a `runs`, `scores`, `samples` or `ratings` part that is not readable Parquet, has a
  column of the wrong type, or (runs) does not hold the one row of the run its name carries. Readers
  already skip them with a warning.
* orphaned parts: `scores` and `samples` parts with no `runs` part (a writer killed before it
  committed), and those of a run whose `runs` part is damaged. Readers never see them.
* stale temp files: a writer's dot-named `*.tmp` file (`harness.files.atomic_write`) that is no longer
  being written: untouched for `stale_after` and, when its name carries a process id, that process
  is not running on this machine.

A part is only called orphaned, and a temp file only stale, once it has been left alone for
`stale_after`: a writer commits a run seconds after its first part, so a run being written now is
never mistaken for a killed one. Repair moves files, never deletes them: into
`<store>/_quarantine/<UTC time>/<table>/<name>`, a folder no reader looks in.
"""

from __future__ import annotations

import errno
import functools
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.store.layout import (
    QUARANTINE_DIR,
    SCHEMAS,
    TABLES,
    is_temp_name,
    run_id_of,
    validate_store,
)
from harness.store.location import is_remote, uri
from harness.store.packs import (
    MANIFEST_DIR,
    PACKED_TABLES,
    PackSet,
    manifest_path,
    pack_id_of,
    read_pack_set,
)
from harness.store.reader import PartVanished, check_runs_parts, one_line, part_entries, read_parts

__all__ = ["DEFAULT_STALE_AFTER", "StoreCheck", "StoreFinding", "check_store"]

DEFAULT_STALE_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class StoreFinding:
    """One file no reader can use: its kind (damaged, orphaned, stale temp), path and why."""

    kind: str  # "damaged" | "orphaned" | "stale temp"
    path: Path
    reason: str
    moved_to: Path | None = None

    def describe(self, root: Path) -> str:
        where = f" -> moved to {self.moved_to.relative_to(root)}" if self.moved_to is not None else ""
        return f"{self.kind}: {self.path.relative_to(root)} ({self.reason}){where}"


@dataclass(frozen=True)
class StoreCheck:
    """What `check_store` found; `quarantine` is where `repair` moved it (None when nothing moved)."""

    root: Path
    findings: tuple[StoreFinding, ...] = ()
    runs: int = 0  # committed runs that read cleanly
    quarantine: Path | None = None
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not self.findings

    def of_kind(self, kind: str) -> tuple[StoreFinding, ...]:
        return tuple(finding for finding in self.findings if finding.kind == kind)


def _pid_of_temp(name: str) -> int | None:
    """The writer's pid in a temp name `.<target>.<pid>-<random>.tmp`; None for older names."""
    token = name[: -len(".tmp")].rsplit(".", 1)[-1]
    pid, dash, _ = token.partition("-")
    return int(pid) if dash and pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as error:  # EPERM: running, as another user
        return error.errno == errno.EPERM
    return True


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


def _damaged_parts(root: Path, table: str) -> list[tuple[Path, str]]:
    names = sorted(name for _, name, _, _ in part_entries(root, table))
    found = []
    for name in names:
        path = root / table / name
        if table in SCHEMAS:
            check = check_runs_parts if table == "runs" else None
            _, bad = read_parts(SCHEMAS[table], [str(path)], check=check)
            if bad:
                found.append((path, bad[0].partition(": ")[2]))
            continue
        try:  # ratings: their schema belongs to harness.ratings; any readable Parquet is fine here
            pq.read_table(path)
        except (OSError, pa.ArrowException) as error:
            found.append((path, one_line(str(error)) or type(error).__name__))
    return found


def _stale_temps(root: Path, now: float, stale_after: float) -> list[tuple[Path, str]]:
    found = []
    for folder in (root, root / MANIFEST_DIR, *(root / table for table in TABLES)):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not path.is_file() or not is_temp_name(path.name):
                continue
            age = _age(path, now)
            pid = _pid_of_temp(path.name)
            if age < stale_after or (pid is not None and _alive(pid)):
                continue
            writer = "its writer is gone" if pid is not None else "left by a writer"
            found.append((path, f"{writer}; untouched for {age / 60:.0f} min"))
    return found


def _pack_findings(root: Path, packs: PackSet, now: float, limit: float) -> list[StoreFinding]:
    """Damaged manifests and packs (repair moves a damaged pack's manifest too, so no reader looks
    for it), and pack files no manifest commits, left by a compaction killed before its commit."""
    manifests = root / MANIFEST_DIR
    findings = [
        StoreFinding("damaged", manifests / name, reason)
        for name, _, reason in (item.partition(": ") for item in packs.damaged)
    ]
    for pack in packs.live:
        for table in PACKED_TABLES:
            if not pack.holds(table):
                continue
            check = functools.partial(check_runs_parts, packs=packs) if table == "runs" else None
            try:
                _, bad = read_parts(SCHEMAS[table], [pack.path(root, table)], check=check)
            except PartVanished:
                bad = [f"{pack.name}: missing, though its manifest commits it"]
            if bad:
                reason = bad[0].partition(": ")[2]
                findings.append(StoreFinding("damaged", Path(pack.path(root, table)), reason))
                manifest = Path(manifest_path(root, pack.pack_id))
                if manifest not in {finding.path for finding in findings}:
                    findings.append(StoreFinding("damaged", manifest, f"commits the damaged {table} pack"))
    named = {pack.pack_id for pack in (*packs.live, *packs.replaced)}
    for table in PACKED_TABLES:
        folder = root / table
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            pack_id = pack_id_of(path.name)
            if pack_id in packs.damaged_ids:
                # Committed by the damaged manifest, maybe the only copy of its runs' rows: it goes
                # aside with the manifest (never left behind as an orphan a compaction would remove).
                findings.append(StoreFinding("damaged", path, "its manifest is damaged"))
            elif pack_id is not None and pack_id not in named and _age(path, now) >= limit:
                findings.append(StoreFinding("orphaned", path, "no manifest: its compaction never committed"))
    return findings


def _findings(root: Path, stale_after: timedelta) -> tuple[list[StoreFinding], int]:
    now = time.time()
    limit = stale_after.total_seconds()
    findings = [
        StoreFinding("damaged", path, reason)
        for table in TABLES
        for path, reason in _damaged_parts(root, table)
    ]
    damaged_runs = {run_id_of(f.path.name) for f in findings if f.path.parent.name == "runs"}
    committed = {run_id for run_id in (run_id_of(n) for _, n, _, _ in part_entries(root, "runs")) if run_id}
    packs = read_pack_set(root)
    committed |= packs.packed("runs")
    findings += _pack_findings(root, packs, now, limit)
    flagged = {finding.path for finding in findings}
    for table in ("scores", "samples"):
        for _, name, _, _ in part_entries(root, table):
            run_id = run_id_of(name)
            path = root / table / name
            if path in flagged or run_id is None or run_id in packs.packed(table):
                continue  # a packed run's leftover loose part: no reader uses it; compaction removes it
            if run_id in damaged_runs:
                findings.append(StoreFinding("orphaned", path, "its runs part is damaged"))
            elif run_id not in committed and _age(path, now) >= limit:
                findings.append(StoreFinding("orphaned", path, "no runs part: its writer never committed"))
    findings += [StoreFinding("stale temp", path, reason) for path, reason in _stale_temps(root, now, limit)]
    return findings, len(committed - damaged_runs)


def _move(path: Path, quarantine: Path, root: Path) -> Path:
    target = quarantine / path.relative_to(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)  # same filesystem: a rename, never a copy and delete
    return target


def check_store(
    root: str | Path, *, repair: bool = False, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> StoreCheck:
    """Find damaged parts, orphaned parts and stale temp files; with `repair`, move them into
    `<root>/_quarantine/<time>/` (nothing is ever deleted). HarnessError when root is not a store."""
    if is_remote(root):
        raise HarnessError(f"harness store check works on local stores only for now, not on {uri(root)}")
    path = Path(root)
    if not validate_store(path):
        raise HarnessError(f"no results store at {path}")
    findings, runs = _findings(path, stale_after)
    if not repair or not findings:
        return StoreCheck(path, tuple(findings), runs)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    quarantine = path / QUARANTINE_DIR / stamp
    moved: list[StoreFinding] = []
    for finding in findings:
        try:
            target = _move(finding.path, quarantine, path)
        except FileNotFoundError:
            continue  # removed, or renamed by its writer, meanwhile: nothing left to move
        except OSError as error:
            raise HarnessError(
                f"cannot move {finding.path} into {quarantine}: {error.strerror or error}"
                f" ({len(moved)} file(s) already moved there)"
            ) from error
        moved.append(StoreFinding(finding.kind, finding.path, finding.reason, target))
    return StoreCheck(path, tuple(moved), runs, quarantine, repaired=True)
