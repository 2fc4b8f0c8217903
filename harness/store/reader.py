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
"""

from __future__ import annotations

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
from harness.store.layout import (
    MARKER_NAME,
    RUNS_SCHEMA,
    SAMPLES_SCHEMA,
    SCORES_SCHEMA,
    part_name,
    part_path,
    run_id_of,
    validate_store,
)

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
RUN_COLUMNS_FOR_SCORES = ["model", "experiment", "step", "created_at"]

# (table, file name, size in bytes, modification time in ns): enough to notice a new or replaced part.
PartEntry = tuple[str, str, int, int]
# Checks the rows read from some part files (their paths given); returns what is wrong, or None.
PartCheck = Callable[[pa.Table, Sequence[str]], "str | None"]


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
    parts: tuple[PartEntry, ...] = ()

    @property
    def key(self) -> str:
        """A short digest of the listing: a cheap cache key (hashing the listing itself is not)."""
        return hashlib.sha1(repr((self.root, self.exists, self.marker, self.parts)).encode()).hexdigest()

    def run_ids(self, table: str) -> list[str]:
        ids = (run_id_of(name) for t, name, _, _ in self.parts if t == table)
        return [run_id for run_id in ids if run_id is not None]

    def paths(self, table: str, run_ids: set[str]) -> list[str]:
        directory = os.path.join(self.root, table)  # plain strings: pathlib is slow over many parts
        names = {part_name(run_id) for run_id in run_ids}
        return [os.path.join(directory, name) for t, name, _, _ in self.parts if t == table and name in names]

    def run_stamp(self, run_id: str) -> tuple[PartEntry, ...]:
        """The listing entries of one run's runs and samples parts: changes when either is rewritten."""
        name = part_name(run_id)
        return tuple(entry for entry in self.parts if entry[1] == name and entry[0] in ("runs", "samples"))


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
    """The part files of one table, with sizes and modification times (cheap: one `scandir`)."""
    entries: list[PartEntry] = []
    try:
        iterator = os.scandir(os.path.join(root, table))
    except OSError:
        return entries
    with iterator:
        for entry in iterator:
            # Temp files of a writer in progress are dot-named and never end in .parquet.
            if run_id_of(entry.name) is None:
                continue
            try:
                stat = entry.stat()
            except OSError:  # removed while listing: the next listing sees what replaced it
                continue
            entries.append((table, entry.name, stat.st_size, stat.st_mtime_ns))
    return entries


def list_store(root: str | Path) -> StoreListing:
    """One `scandir` per table: cheap enough to run on every rerun of the app."""
    path = Path(root)
    if not path.is_dir():
        return StoreListing(root=str(path), exists=path.exists(), marker=None)
    marker_path = path / MARKER_NAME
    marker = None
    if marker_path.is_file():
        stat = marker_path.stat()
        marker = (stat.st_size, stat.st_mtime_ns)
    parts = [entry for table in _LISTED_TABLES for entry in part_entries(path, table)]
    return StoreListing(root=str(path), exists=True, marker=marker, parts=tuple(sorted(parts)))


def _dataset(
    schema: pa.Schema, paths: Sequence[str], filt: ds.Expression | None, columns: Sequence[str] | None
) -> pa.Table:
    # An explicit schema lets older part files with fewer columns read as nulls.
    dataset = ds.dataset(list(paths), schema=schema, format="parquet")
    return dataset.to_table(filter=filt, columns=None if columns is None else list(columns))


def check_runs_parts(table: pa.Table, paths: Sequence[str]) -> str | None:
    """A runs part holds exactly one row, of the run its name carries, with every required field set.

    Anything else (a part copied under another name, rows written by a broken tool) would show a run
    whose scores and samples cannot be found, or a run that is not there."""
    expected = sorted(run_id_of(Path(path).name) or "" for path in paths)
    if "run_id" in table.column_names:
        found = sorted(str(value) for value in table.column("run_id").to_pylist())
        if found != expected:
            if len(found) != len(paths):
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
            reason = one_line(_SOURCE_PREFIX.sub("", str(error), count=1))  # the part is named already
            unreadable.append(f"{Path(path).name}: {reason or type(error).__name__}")
            continue
        problem = None if check is None else check(part, [path])
        if problem is None:
            tables.append(part)
        else:
            unreadable.append(f"{Path(path).name}: {problem}")
    return (pa.concat_tables(tables) if tables else empty), unreadable


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
    parts asked for by name), raises HarnessError naming it."""
    if keys is None:
        names = sorted(name for _, name, _, _ in part_entries(root, table))
    else:
        names = [part_name(key) for key in keys]
    paths = [path for path in (os.path.join(root, table, name) for name in names) if os.path.isfile(path)]
    check = check_runs_parts if table == "runs" else None
    result, unreadable = read_parts(schema, paths, filt=filt, check=check)
    if unreadable and strict:
        name, _, reason = unreadable[0].partition(": ")
        raise HarnessError(
            f"the {table} part {os.path.join(root, table, name)} is damaged ({reason}); "
            f"`harness store check --store {root}` lists what is wrong"
        )
    for item in unreadable:
        warn_damaged(root, table, item)
    return result


def to_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    if "step" in frame.columns:
        # A nullable integer dtype keeps `step` an integer column whether or not any run lacks one.
        frame["step"] = frame["step"].astype("Int64")
    return frame


def runs_frame(table: pa.Table) -> pd.DataFrame:
    """Runs, oldest first."""
    return to_frame(table).sort_values(["created_at", "run_id"], ignore_index=True)


def join_runs(scores: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Score rows with their run's model, experiment, step and created_at, oldest run first.

    The inner join also drops rows whose run_id disagrees with the committed runs."""
    merged = scores.merge(runs[["run_id", *RUN_COLUMNS_FOR_SCORES]], on="run_id", how="inner")
    return merged.sort_values(["created_at", "run_id"], kind="stable", ignore_index=True)


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
        valid = validate_store(Path(root))
    except HarnessError as error:
        return _empty_data(root, _sentence(str(error)))
    if not valid:
        return _empty_data(root, f"{root} is empty: no run has been stored there yet.")

    # A run is committed when its runs part exists; its other parts may be missing or unreadable.
    with_scores = set(listing.run_ids("scores"))
    with_samples = set(listing.run_ids("samples"))
    runs_table, bad_runs = read_parts(
        RUNS_SCHEMA, listing.paths("runs", set(listing.run_ids("runs"))), check=check_runs_parts
    )
    runs = runs_frame(runs_table)
    run_ids = set(runs["run_id"].astype(str))
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
    return StoreData(
        root=root,
        runs=runs,
        scores=join_runs(to_frame(scores_table), runs),
        problems=tuple(problems),
        runs_without_samples=frozenset(run_ids - with_samples),
        key=listing.key,
    )


def _samples_part(root: str | Path, run_id: str) -> str:
    """The samples part of a committed run; HarnessError with a readable message otherwise."""
    if not part_path(root, "runs", run_id).is_file():
        raise HarnessError(f"Run {run_id} is not a completed run in {root}.")
    path = part_path(root, "samples", run_id)
    if not path.is_file():
        raise HarnessError(f"Run {run_id} has no samples table part in {root}; its samples are missing.")
    return str(path)


def _read_run_samples(
    root: str | Path, run_id: str, task: str | None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    filt = ds.field("run_id") == run_id
    if task is not None:
        filt = filt & (ds.field("task") == task)
    table, unreadable = read_parts(SAMPLES_SCHEMA, [_samples_part(root, run_id)], filt=filt, columns=columns)
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
