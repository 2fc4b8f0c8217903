"""Reading the store: every read of runs, scores and samples, by `ResultStore` and the leaderboard alike.

Part files are read with pyarrow against the table's schema, so a part written before a column existed
reads that column as nulls. A run is complete when its `runs` part exists (written last); parts of other
tables without one belong to a run still being written, or to a killed writer, and stay invisible.

A damaged part (not Parquet, truncated, a column of the wrong type, or a runs part whose row does not
match its name) never hides the other runs: a read of every run skips it with one `DamagedPartWarning`
naming the part (the CLI prints it as one `harness: warning:` line), and `harness store check --repair`
moves it aside. A read of one named run (`ResultStore.scores(run_id)`, `load_samples`) raises
HarnessError naming the part instead, since what was asked for cannot be given. The leaderboard reads
through `list_store` and `load_store`, which also list the skipped parts in `StoreData.problems` for the
page; `StoreListing.key` (part names, sizes and modification times) is what it caches on, so a run
committed while the app is open shows up on the next rerun.

Runs merged by `harness store compact` are read from their packs (`harness.store.packs`), and every
file is found through `harness.store.location`, so a store in object storage reads the same way. A
read that finds a listed file gone (a compaction replaced it) lists again and starts over.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from harness.errors import HarnessError
from harness.store.frames import join_runs_table, runs_frame, to_frame
from harness.store.layout import (
    MARKER_NAME,
    RUNS_SCHEMA,
    SAMPLES_SCHEMA,
    SCORES_SCHEMA,
    part_name,
    run_id_of,
    validate_store,
)
from harness.store.location import dataset_paths, is_dir, is_file, is_remote, list_files, uri
from harness.store.packs import MANIFEST_DIR, PackSet, pack_id_of, read_pack_set

__all__ = [
    "DamagedPartWarning",
    "StoreData",
    "StoreListing",
    "list_store",
    "load_samples",
    "load_store",
    "part_entries",
    "read_parts",
    "read_table",
    "sample_counts",
]

_LISTED_TABLES = ("runs", "scores", "samples")
# Columns of runs joined onto each score row.

# (table, file name, size in bytes, modification time in ns): enough to notice a new or replaced part.
PartEntry = tuple[str, str, int, int]
# Checks the rows read from some part files (their paths given); returns what is wrong, or None.
PartCheck = Callable[[pa.Table, Sequence[str]], "str | None"]
# How often a read is planned again when a file it planned on was removed meanwhile (a compaction
# replaced it by a pack); each retry sees the committed pack, so one is nearly always enough.
_REPLANS = 10


class PartVanished(Exception):
    """A file a read planned on is gone: a compaction committed a pack holding its rows. Plan again."""


# pyarrow's "Could not open Parquet input source '<path>': " repeats the path the message names anyway.
_SOURCE_PREFIX = re.compile(r"^Could not open Parquet input source '[^']*': ")


class DamagedPartWarning(UserWarning):
    """A part file that could not be read (or holds what its name says it cannot) was skipped."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


# What was already said: each damaged part is reported once per process, however many reads skip it
# (Python's own once-per-location registry is reset whenever a library touches the warning filters).
_WARNED: set[str] = set()


def one_line(text: str, limit: int = 300) -> str:
    """An exception's text as one short line (pyarrow's messages can span many lines)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def warn_damaged(root: str | Path, table: str, item: str) -> None:
    """Say, once per process, that the `table` part `item` (`name: reason`) was skipped."""
    name, _, reason = item.partition(": ")
    path = os.path.join(root, table, name)
    message = (
        f"skipped the damaged {table} part {path} ({reason or 'unreadable'}); "
        f"`harness store check --store {root} --repair` moves it aside"
    )
    if message in _WARNED:
        return
    _WARNED.add(message)
    # warn_explicit with no source file: Python prints it as one line, not the line of code below it.
    warnings.warn_explicit(DamagedPartWarning(message, path), DamagedPartWarning, "harness", 0)


@dataclass(frozen=True)
class StoreListing:
    """What is on disk, cheaply: the cache key for everything read from the store."""

    root: str
    exists: bool
    marker: tuple[int, int] | None  # (size, mtime) of the store marker, None when absent
    parts: tuple[PartEntry, ...] = ()  # loose parts not replaced by a pack, and the live packs' files
    packs: PackSet = field(default_factory=PackSet, compare=False)

    @property
    def key(self) -> str:
        """A short digest of the listing: a cheap cache key (hashing the listing itself is not)."""
        return hashlib.sha1(repr((self.root, self.exists, self.marker, self.parts)).encode()).hexdigest()

    def run_ids(self, table: str) -> list[str]:
        ids = (run_id_of(name) for t, name, _, _ in self.parts if t == table)
        return [run_id for run_id in ids if run_id is not None] + sorted(self.packs.packed(table))

    def paths(self, table: str, run_ids: set[str]) -> list[str]:
        """The files holding rows of `table` for `run_ids`: their loose parts, and the packs holding
        any of them (whose rows of other runs the caller filters out)."""
        directory = os.path.join(self.root, table)  # plain strings: pathlib is slow over many parts
        names = {part_name(run_id) for run_id in run_ids}
        names.update(pack.name for pack in self.packs.covering(table, run_ids))
        return [os.path.join(directory, name) for t, name, _, _ in self.parts if t == table and name in names]

    def run_stamp(self, run_id: str) -> tuple[PartEntry, ...]:
        """The listing entries of one run's runs and samples files: changes when either is rewritten."""
        names = {part_name(run_id)}
        for table in ("runs", "samples"):
            names.update(pack.name for pack in self.packs.covering(table, [run_id]))
        return tuple(entry for entry in self.parts if entry[1] in names and entry[0] in ("runs", "samples"))


@dataclass(frozen=True)
class StoreData:
    """Runs and scores of every committed run, with plain-language problems instead of exceptions.

    `error` set means nothing could be read (no store, a newer schema, not a store at all);
    `problems` are per-run issues that leave the rest of the store usable.
    """

    root: str
    runs: pd.DataFrame
    scores: pd.DataFrame
    error: str | None = None
    problems: tuple[str, ...] = ()
    runs_without_samples: frozenset[str] = field(default_factory=frozenset)
    key: str = ""  # the digest of the listing it was read from: a cache key for anything derived

    @property
    def empty(self) -> bool:
        return self.runs.empty


def part_entries(root: str | Path, table: str) -> list[PartEntry]:
    """The part files of one table, with sizes and modification times (cheap: one `scandir`, or one
    listing request in object storage)."""
    # Temp files of a writer in progress are dot-named and never end in .parquet.
    return [
        (table, name, size, mtime)
        for name, size, mtime in list_files(os.path.join(uri(root), table))
        if run_id_of(name) is not None
    ]


def _pack_entries(root: str, table: str, packs: PackSet) -> list[PartEntry]:
    names = {pack.name for pack in packs.covering(table)}
    if not names:
        return []
    # Listed after the manifests: a pack replaced and removed since is missing, and the next listing has it.
    files = list_files(os.path.join(root, table))
    return [(table, name, size, mtime) for name, size, mtime in files if name in names]


def list_store(root: str | Path) -> StoreListing:
    """One `scandir` per table, then the pack manifests: cheap enough to run on every rerun of the app.

    The loose parts are listed before the manifests, so a pack committed in between replaces parts
    already listed rather than hiding parts not yet listed (`harness.store.packs`)."""
    path = uri(root)
    if not is_dir(path):
        return StoreListing(root=path, exists=not is_remote(path) and os.path.exists(path), marker=None)
    marker = next(((size, mtime) for name, size, mtime in list_files(path) if name == MARKER_NAME), None)
    loose = [entry for table in _LISTED_TABLES for entry in part_entries(path, table)]
    packs = read_pack_set(path)
    parts = [entry for entry in loose if run_id_of(entry[1]) not in packs.packed(entry[0])]
    parts += [entry for table in _LISTED_TABLES for entry in _pack_entries(path, table, packs)]
    return StoreListing(root=path, exists=True, marker=marker, parts=tuple(sorted(parts)), packs=packs)


def _dataset(
    schema: pa.Schema, paths: Sequence[str], filt: ds.Expression | None, columns: Sequence[str] | None
) -> pa.Table:
    # An explicit schema lets older part files with fewer columns read as nulls.
    filesystem, sources = dataset_paths(paths)
    dataset = ds.dataset(sources, schema=schema, format="parquet", filesystem=filesystem)
    return dataset.to_table(filter=filt, columns=None if columns is None else list(columns))


def _expected_runs(path: str, packs: PackSet | None, wanted: set[str] | None) -> list[str]:
    name = os.path.basename(path)
    pack_id = pack_id_of(name)
    if pack_id is not None and packs is not None:
        held = [run_id for pack in packs.live if pack.pack_id == pack_id for run_id in pack.holds("runs")]
        return held if wanted is None else [run_id for run_id in held if run_id in wanted]
    return [run_id_of(name) or ""]


def check_runs_parts(
    table: pa.Table,
    paths: Sequence[str],
    packs: PackSet | None = None,
    wanted: set[str] | None = None,
) -> str | None:
    """A runs part holds exactly one row, of the run its name carries, with every required field set;
    a runs pack holds one row for each run its manifest lists.

    Anything else (a part copied under another name, rows written by a broken tool) would show a run
    whose scores and samples cannot be found, or a run that is not there."""
    expected = sorted(run_id for path in paths for run_id in _expected_runs(path, packs, wanted))
    if "run_id" in table.column_names:
        found = sorted(str(value) for value in table.column("run_id").to_pylist())
        if found != expected:
            if len(found) != len(expected):
                return f"holds {len(found)} rows, not 1 per run"
            return f"holds run {found[0]!r}, not the run its name carries"
    required = [f.name for f in RUNS_SCHEMA if not f.nullable and f.name in table.column_names]
    for name in required:
        if table.column(name).null_count:
            return f"its required column {name!r} is empty"
    return None


def read_parts(
    schema: pa.Schema,
    paths: Sequence[str],
    *,
    filt: ds.Expression | None = None,
    columns: Sequence[str] | None = None,
    check: PartCheck | None = None,
) -> tuple[pa.Table, list[str]]:
    """The rows of these part files, and `name: reason` for each part that could not be read
    (or whose rows `check` finds wrong).

    All parts are read together; only when that fails are they read one by one to find the bad ones.
    """
    empty = schema.empty_table() if columns is None else schema.empty_table().select(list(columns))
    if not paths:
        return empty, []
    try:
        together = _dataset(schema, paths, filt, columns)
        if check is None or check(together, paths) is None:
            return together, []
    except (OSError, pa.ArrowException):
        pass
    tables, unreadable = [], []
    for path in paths:
        try:
            part = _dataset(schema, [path], filt, columns)
        except (OSError, pa.ArrowException) as error:
            if not is_file(path):
                raise PartVanished(path) from error
            reason = one_line(_SOURCE_PREFIX.sub("", str(error), count=1))  # the part is named already
            unreadable.append(f"{Path(path).name}: {reason or type(error).__name__}")
            continue
        problem = None if check is None else check(part, [path])
        if problem is None:
            tables.append(part)
        else:
            unreadable.append(f"{Path(path).name}: {problem}")
    return (pa.concat_tables(tables) if tables else empty), unreadable


def _plan(root: str | Path, table: str, keys: Sequence[str] | None) -> tuple[list[str], PackSet, bool]:
    """The files to read for `keys` of `table` (every file when None): loose parts, listed first, then
    the packs the manifests name; the loose parts of packed runs are dropped. True when packs are read."""
    if keys is None:
        names = sorted(name for _, name, _, _ in part_entries(root, table))
    else:
        names = [part_name(key) for key in keys]
    directory = os.path.join(uri(root), table)
    loose = [path for path in (os.path.join(directory, name) for name in names) if is_file(path)]
    packs = read_pack_set(root) if table in _LISTED_TABLES else PackSet()
    for item in packs.damaged:  # the runs it commits are missing from this read: say so, once
        warn_damaged(root, MANIFEST_DIR, item)
    packed = packs.packed(table)
    if packed:
        loose = [path for path in loose if run_id_of(os.path.basename(path)) not in packed]
    covering = packs.covering(table, keys)
    return loose + [pack.path(root, table) for pack in covering], packs, bool(covering)


def read_table(
    root: str | Path,
    table: str,
    schema: pa.Schema,
    keys: Sequence[str] | None = None,
    *,
    filt: ds.Expression | None = None,
    strict: bool = False,
) -> pa.Table:
    """Every part of `table`, or the parts of `keys` that exist (run ids; campaign ids for ratings).

    A part that cannot be read is skipped with a `DamagedPartWarning`, or, with `strict` (a read of
    parts asked for by name), raises HarnessError naming it. Runs compacted into packs are read from
    their packs (`harness.store.packs`)."""
    for _ in range(_REPLANS):
        paths, packs, packed = _plan(root, table, keys)
        rows = filt
        if packed and keys is not None:  # a pack holds rows of other runs too
            wanted = ds.field("run_id").isin(list(keys))
            rows = wanted if filt is None else wanted & filt
        check: PartCheck | None = None
        if table == "runs":
            chosen = None if keys is None else set(keys)
            check = functools.partial(check_runs_parts, packs=packs, wanted=chosen)
        try:
            result, unreadable = read_parts(schema, paths, filt=rows, check=check)
            break
        except PartVanished:
            continue
    else:
        raise HarnessError(f"the {table} files of {root} kept changing while being read; try again")
    if unreadable and strict:
        name, _, reason = unreadable[0].partition(": ")
        raise HarnessError(
            f"the {table} part {os.path.join(root, table, name)} is damaged ({reason}); "
            f"`harness store check --store {root}` lists what is wrong"
        )
    for item in unreadable:
        warn_damaged(root, table, item)
    return result


def _empty_data(root: str, error: str | None) -> StoreData:
    return StoreData(root=root, runs=pd.DataFrame(), scores=pd.DataFrame(), error=error)


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def load_store(listing: StoreListing) -> StoreData:
    """Runs and scores of every committed run, or a plain explanation of why there are none."""
    root = listing.root
    if not listing.exists:
        return _empty_data(
            root, f"There is no results store at {root}. Run `harness run --store {root}` first."
        )
    try:
        valid = validate_store(root)
    except HarnessError as error:
        return _empty_data(root, _sentence(str(error)))
    if not valid:
        return _empty_data(root, f"{root} is empty: no run has been stored there yet.")
    for _ in range(_REPLANS):
        try:
            return _load_listed(listing)
        except PartVanished:  # a compaction replaced listed parts by a pack: list again
            listing = list_store(root)
    return _empty_data(root, f"The files of {root} kept changing while being read; reload the page.")


def _load_listed(listing: StoreListing) -> StoreData:
    root = listing.root
    # A run is committed when its runs part exists; its other parts may be missing or unreadable.
    with_scores = set(listing.run_ids("scores"))
    with_samples = set(listing.run_ids("samples"))
    check = functools.partial(check_runs_parts, packs=listing.packs)
    runs_table, bad_runs = read_parts(
        RUNS_SCHEMA, listing.paths("runs", set(listing.run_ids("runs"))), check=check
    )
    runs = runs_frame(runs_table)
    run_ids = set(runs["run_id"].astype(str))
    # Packs may hold scores of runs not committed here (a damaged runs part): the join drops them.
    scores_table, bad_scores = read_parts(SCORES_SCHEMA, listing.paths("scores", run_ids & with_scores))

    for table, items in (("runs", bad_runs), ("scores", bad_scores)):
        for item in items:
            warn_damaged(root, table, item)
    problems = [f"Skipped an unreadable runs part, {item}" for item in bad_runs]
    problems += [
        f"Run {run_id} has no scores table part; it is listed but has no numbers."
        for run_id in sorted(run_ids - with_scores)
    ]
    problems += [f"Skipped an unreadable scores part, {item}" for item in bad_scores]
    for item in listing.packs.damaged:
        warn_damaged(root, MANIFEST_DIR, item)
        problems.append(f"Skipped a damaged pack manifest, {item}: the runs it commits are not shown")
    return StoreData(
        root=root,
        runs=runs,
        scores=to_frame(join_runs_table(scores_table, runs_table)),
        problems=tuple(problems),
        runs_without_samples=frozenset(run_ids - with_samples),
        key=listing.key,
    )


def _samples_part(root: str | Path, run_id: str) -> str:
    """The samples part (or pack) of a committed run; HarnessError with a readable message otherwise."""
    committed, _, _ = _plan(root, "runs", [run_id])
    if not committed:
        raise HarnessError(f"Run {run_id} is not a completed run in {root}.")
    paths, _, _ = _plan(root, "samples", [run_id])
    if not paths:
        raise HarnessError(f"Run {run_id} has no samples table part in {root}; its samples are missing.")
    return paths[0]


def _read_run_samples(
    root: str | Path, run_id: str, task: str | None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    filt = ds.field("run_id") == run_id
    if task is not None:
        filt = filt & (ds.field("task") == task)
    for _ in range(_REPLANS):
        try:
            table, unreadable = read_parts(
                SAMPLES_SCHEMA, [_samples_part(root, run_id)], filt=filt, columns=columns
            )
            break
        except PartVanished:
            continue
    else:
        raise HarnessError(f"The samples of run {run_id} kept moving while being read; try again.")
    if unreadable:
        raise HarnessError(f"The samples of run {run_id} cannot be read: {unreadable[0]}")
    return table.to_pandas()


def load_samples(root: str | Path, run_id: str, task: str | None = None) -> pd.DataFrame:
    """One committed run's samples (optionally of one task), by task and doc id."""
    frame = _read_run_samples(root, run_id, task)
    return frame.sort_values(["task", "doc_id"], kind="stable", ignore_index=True)


def sample_counts(root: str | Path, run_id: str) -> pd.DataFrame:
    """task, samples, groups: per task, without reading the texts."""
    frame = _read_run_samples(root, run_id, None, columns=["task", "group"])
    counts = frame.groupby("task", sort=True).agg(samples=("task", "size"), groups=("group", "nunique"))
    return counts.reset_index().astype({"samples": "int64", "groups": "int64"})
