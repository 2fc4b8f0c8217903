"""Reading the results store for the leaderboard: a directory listing, then DuckDB over the part files.

Nothing here imports Streamlit. The app caches these functions keyed by `StoreListing`, the names,
sizes and modification times of the part files, so a run committed while the app is open changes the
key and shows up on the next rerun, without a restart and without re-reading unchanged data on
every click.

A run is complete when its `runs` part exists (the store writes it last). Parts of other tables
without a `runs` part belong to a run still being written, or to a writer that was killed, and stay
invisible, exactly as `ResultStore` treats them. The store marker is checked the way `ResultStore`
checks it, so a store from a newer harness is refused with the same explanation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from harness.errors import HarnessError
from harness.store import CACHE_FILE_NAMES, MARKER_NAME, SCHEMA_VERSION, STORE_FORMAT

__all__ = [
    "StoreData",
    "StoreListing",
    "list_store",
    "load_samples",
    "load_store",
    "sample_counts",
]

_PART_PREFIX = "part-"
_PART_SUFFIX = ".parquet"
_LISTED_TABLES = ("runs", "scores", "samples")
# Columns the pages rely on, so a part file written before a column existed still reads.
_RUN_COLUMNS = (
    "run_id",
    "created_at",
    "model",
    "model_fingerprint",
    "experiment",
    "step",
    "tasks",
    "provenance",
    "status",
)
_SCORE_COLUMNS = (
    "run_id",
    "task",
    "task_version",
    "metric",
    "value",
    "stderr",
    "ci_low",
    "ci_high",
    "n",
    "higher_is_better",
    "signature",
)
_SAMPLE_COLUMNS = (
    "run_id",
    "task",
    "doc_id",
    "prompt",
    "target",
    "prediction",
    "choice_logprobs",
    "statistics",
    "group",
    "metadata",
)

# (table, file name, size in bytes, modification time in ns): enough to notice a new or replaced part.
PartEntry = tuple[str, str, int, int]


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
        return [name[len(_PART_PREFIX) : -len(_PART_SUFFIX)] for t, name, _, _ in self.parts if t == table]

    def newest_first(self, table: str, run_ids: set[str]) -> list[str]:
        """Part paths of `table` for these runs, the most recently written first."""
        entries = [entry for entry in self.parts if entry[0] == table]
        entries.sort(key=lambda entry: entry[3], reverse=True)
        names = {f"{_PART_PREFIX}{run_id}{_PART_SUFFIX}" for run_id in run_ids}
        directory = os.path.join(self.root, table)  # plain strings: pathlib is slow over many parts
        return [os.path.join(directory, name) for _, name, _, _ in entries if name in names]


@dataclass(frozen=True)
class StoreData:
    """Everything the pages need from the store, with plain-language problems instead of exceptions.

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


def _scan(directory: Path, table: str) -> list[PartEntry]:
    entries: list[PartEntry] = []
    try:
        iterator = os.scandir(directory)
    except OSError:
        return entries
    with iterator:
        for entry in iterator:
            # Temp files of a writer in progress are dot-named and never end in .parquet.
            if entry.name.startswith(_PART_PREFIX) and entry.name.endswith(_PART_SUFFIX):
                stat = entry.stat()
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
    parts = [entry for table in _LISTED_TABLES for entry in _scan(path / table, table)]
    return StoreListing(root=str(path), exists=True, marker=marker, parts=tuple(sorted(parts)))


def _frame(connection: duckdb.DuckDBPyConnection, query: str, params: dict[str, object]) -> pd.DataFrame:
    # Through Arrow: timestamps keep their UTC zone and no pandas-deprecated path is taken.
    return connection.sql(query, params=params).to_arrow_table().to_pandas()


def _read_parts(
    connection: duckdb.DuckDBPyConnection, files: Sequence[str], columns: Sequence[str]
) -> tuple[pd.DataFrame, list[str]]:
    """DuckDB over many part files at once; a file it cannot read is skipped and named, not fatal.

    Pass the newest file first. Reading by the first file's columns is several times faster than
    `union_by_name`, which opens every footer before reading; when the parts' columns differ (an
    older part lacks one, or the first lacks one the others have), the union is read instead.
    """
    if not files:
        return pd.DataFrame({column: [] for column in columns}), []
    fast = "SELECT * FROM read_parquet($files, file_row_number = true)"
    union = "SELECT * FROM read_parquet($files, union_by_name = true, file_row_number = true)"
    unreadable: list[str] = []
    try:
        frame = _frame(connection, fast, {"files": list(files)})
        if not set(columns) <= set(frame.columns):
            frame = _frame(connection, union, {"files": list(files)})
    except duckdb.Error:
        try:
            frame = _frame(connection, union, {"files": list(files)})
        except duckdb.Error:
            # Find the bad parts one by one, only on this rare path, and read the rest together.
            probe = "SELECT 1 FROM read_parquet($file) LIMIT 0"
            for file in files:
                try:
                    connection.sql(probe, params={"file": file}).fetchall()
                except duckdb.Error as error:
                    unreadable.append(f"{Path(file).name}: {str(error).splitlines()[0]}")
            bad = {item.split(":", 1)[0] for item in unreadable}
            good = [file for file in files if Path(file).name not in bad]
            frame = _frame(connection, union, {"files": good}) if good else pd.DataFrame()
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.NA
    return frame, unreadable


def _marker_error(root: Path) -> str | None:
    """Why `root` cannot be read as a store, in the words `ResultStore` uses; None when it can."""
    marker = root / MARKER_NAME
    if not marker.is_file():
        # Dot-files (a writer's temp files) and the request cache do not make a directory foreign.
        foreign = [
            entry.name
            for entry in root.iterdir()
            if not entry.name.startswith(".") and entry.name not in CACHE_FILE_NAMES
        ]
        if foreign:
            return f"{root} is a non-empty directory but not a harness results store (no {MARKER_NAME})."
        return f"{root} is empty: no run has been stored there yet."
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"Cannot read the results store marker {marker}: {error}"
    if not isinstance(content, dict) or content.get("format") != STORE_FORMAT:
        return f"{marker} does not describe a harness results store."
    version = content.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        return (
            f"The results store {root} has schema version {version}, newer than the {SCHEMA_VERSION} "
            "this harness reads; upgrade harness to view it."
        )
    return None


def _empty_data(root: str, error: str | None) -> StoreData:
    return StoreData(root=root, runs=pd.DataFrame(), scores=pd.DataFrame(), error=error)


def load_store(listing: StoreListing) -> StoreData:
    """Runs and scores of every committed run, or a plain explanation of why there are none.

    Both tables are read by DuckDB from the part files the listing names, in one connection:
    a few hundred small files read in parallel take a fraction of reading them one by one.
    """
    root = listing.root
    if not listing.exists:
        return _empty_data(
            root, f"There is no results store at {root}. Run `harness run --store {root}` first."
        )
    error = _marker_error(Path(root))
    if error is not None:
        return _empty_data(root, error)

    # A run is committed when its runs part exists; its other parts may be missing or unreadable.
    committed = listing.run_ids("runs")
    with_scores = set(listing.run_ids("scores"))
    with_samples = set(listing.run_ids("samples"))
    connection = duckdb.connect()
    try:
        runs, bad_runs = _read_parts(connection, listing.newest_first("runs", set(committed)), _RUN_COLUMNS)
        run_ids = set(runs["run_id"].astype(str))
        score_files = listing.newest_first("scores", run_ids & with_scores)
        scores, bad_scores = _read_parts(connection, score_files, _SCORE_COLUMNS)
    finally:
        connection.close()

    problems = [f"Skipped an unreadable runs part, {item}" for item in bad_runs]
    problems += [
        f"Run {run_id} has no scores table part; it is listed but has no numbers."
        for run_id in sorted(run_ids - with_scores)
    ]
    problems += [f"Skipped an unreadable scores part, {item}" for item in bad_scores]
    runs = runs[list(_RUN_COLUMNS)].astype({"step": "Int64"})
    runs["created_at"] = pd.to_datetime(runs["created_at"], utc=True)
    runs = runs.sort_values(["created_at", "run_id"], ignore_index=True)
    scores = scores[scores["run_id"].isin(run_ids)]
    joined = scores.merge(
        runs[["run_id", "model", "experiment", "step", "created_at"]], on="run_id", how="inner"
    )
    return StoreData(
        root=root,
        runs=runs,
        scores=joined.reset_index(drop=True),
        problems=tuple(problems),
        runs_without_samples=frozenset(run_ids - with_samples),
        key=listing.key,
    )


def _samples_path(root: str | Path, run_id: str) -> Path:
    """The samples part of a committed run; HarnessError with a readable message otherwise."""
    base = Path(root)
    if not (base / "runs" / f"{_PART_PREFIX}{run_id}{_PART_SUFFIX}").is_file():
        raise HarnessError(f"Run {run_id} is not a completed run in {root}.")
    path = base / "samples" / f"{_PART_PREFIX}{run_id}{_PART_SUFFIX}"
    if not path.is_file():
        raise HarnessError(f"Run {run_id} has no samples table part in {root}; its samples are missing.")
    return path


def _query(sql: str, params: dict[str, object], run_id: str) -> pd.DataFrame:
    connection = duckdb.connect()
    try:
        return _frame(connection, sql, params)
    except duckdb.Error as error:
        raise HarnessError(f"The samples of run {run_id} cannot be read: {error}") from error
    finally:
        connection.close()


def load_samples(root: str | Path, run_id: str, task: str | None = None) -> pd.DataFrame:
    """One committed run's samples (optionally of one task), read from its part file by name."""
    path = _samples_path(root, run_id)
    sql = "SELECT * FROM read_parquet($path) WHERE run_id = $run_id"
    params: dict[str, object] = {"path": str(path), "run_id": run_id}
    if task is not None:
        sql += " AND task = $task"
        params["task"] = task
    frame = _query(sql + " ORDER BY task, doc_id", params, run_id)
    for column in _SAMPLE_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    return frame


def sample_counts(root: str | Path, run_id: str) -> pd.DataFrame:
    """task, samples, groups: per task, without reading the texts."""
    path = _samples_path(root, run_id)
    sql = (
        'SELECT task, count(*) AS samples, count(DISTINCT "group") AS groups '
        "FROM read_parquet($path) WHERE run_id = $run_id GROUP BY task ORDER BY task"
    )
    return _query(sql, {"path": str(path), "run_id": run_id}, run_id)
