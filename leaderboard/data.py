"""Reading the results store for the leaderboard: a directory listing, then DuckDB over the part files.

Nothing here imports Streamlit. The app caches these functions keyed by `StoreListing`, the names,
sizes and modification times of the part files, so a run committed while the app is open changes the
key and shows up on the next rerun, without a restart and without re-reading unchanged data on
every click.

A run is complete when its `runs` part exists (the store writes it last). Parts of other tables
without a `runs` part belong to a run still being written, or to a writer that was killed, and stay
invisible, exactly as `ResultStore` treats them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from harness.errors import HarnessError
from harness.store import MARKER_NAME, ResultStore

__all__ = [
    "StoreData",
    "StoreListing",
    "list_store",
    "load_samples",
    "load_store",
]

_PART_PREFIX = "part-"
_PART_SUFFIX = ".parquet"
_LISTED_TABLES = ("runs", "scores", "samples")
# Columns the pages rely on, so a part file written before a column existed still reads.
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

    def run_ids(self, table: str) -> list[str]:
        return [name[len(_PART_PREFIX) : -len(_PART_SUFFIX)] for t, name, _, _ in self.parts if t == table]

    def part_path(self, table: str, run_id: str) -> str:
        return str(Path(self.root) / table / f"{_PART_PREFIX}{run_id}{_PART_SUFFIX}")


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


def _read_parts(files: Sequence[str], columns: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """DuckDB over many part files at once; a file it cannot read is skipped and named, not fatal."""
    if not files:
        return pd.DataFrame({column: [] for column in columns}), []
    query = "SELECT * FROM read_parquet(?, union_by_name = true, file_row_number = true)"
    connection = duckdb.connect()
    try:
        try:
            frame = connection.execute(query, [list(files)]).df()
            unreadable: list[str] = []
        except duckdb.Error:
            # Find the bad parts one by one, only on this rare path, and read the rest together.
            unreadable = []
            for file in files:
                try:
                    connection.execute("SELECT 1 FROM read_parquet(?) LIMIT 0", [file])
                except duckdb.Error as error:
                    unreadable.append(f"{Path(file).name}: {str(error).splitlines()[0]}")
            bad = {item.split(":", 1)[0] for item in unreadable}
            good = [file for file in files if Path(file).name not in bad]
            frame = connection.execute(query, [good]).df() if good else pd.DataFrame()
    finally:
        connection.close()
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.NA
    return frame, unreadable


def _empty_data(root: str, error: str | None) -> StoreData:
    return StoreData(root=root, runs=pd.DataFrame(), scores=pd.DataFrame(), error=error)


def load_store(listing: StoreListing) -> StoreData:
    """Runs and scores of every committed run, or a plain explanation of why there are none."""
    root = listing.root
    if not listing.exists:
        return _empty_data(root, f"There is no results store at {root}. Run `harness run --store {root}` first.")
    try:
        # The store's own reader checks the marker and its schema version and applies its rule
        # for which runs are committed; the runs table is one small row per run.
        runs = ResultStore(root).runs()
    except HarnessError as error:
        return _empty_data(root, str(error))
    except (OSError, ValueError) as error:  # pyarrow raises ArrowInvalid, a ValueError, on a bad part
        return _empty_data(root, f"The runs table of {root} cannot be read: {error}")
    if listing.marker is None:
        return _empty_data(root, f"{root} is empty: no run has been stored there yet.")

    run_ids = runs["run_id"].tolist()
    with_scores = set(listing.run_ids("scores"))
    with_samples = set(listing.run_ids("samples"))
    problems = [
        f"Run {run_id} has no scores table part; it is listed but has no numbers."
        for run_id in run_ids
        if run_id not in with_scores
    ]
    files = [listing.part_path("scores", run_id) for run_id in run_ids if run_id in with_scores]
    scores, unreadable = _read_parts(files, (*_SCORE_COLUMNS, "file_row_number"))
    problems.extend(f"Skipped an unreadable scores part, {item}" for item in unreadable)
    scores = scores[scores["run_id"].isin(run_ids)]
    joined = scores.merge(
        runs[["run_id", "model", "experiment", "step", "created_at"]], on="run_id", how="inner"
    )
    joined["step"] = joined["step"].astype("Int64")
    return StoreData(
        root=root,
        runs=runs,
        scores=joined.reset_index(drop=True),
        problems=tuple(problems),
        runs_without_samples=frozenset(set(run_ids) - with_samples),
    )


def load_samples(listing: StoreListing, run_id: str, task: str | None = None) -> pd.DataFrame:
    """One committed run's samples (optionally one task), read from its part file by name.

    Raises HarnessError with a readable message when the run or its samples part is missing.
    """
    if run_id not in set(listing.run_ids("runs")):
        raise HarnessError(f"Run {run_id} is not a completed run in {listing.root}.")
    if run_id not in set(listing.run_ids("samples")):
        raise HarnessError(f"Run {run_id} has no samples table part in {listing.root}.")
    path = listing.part_path("samples", run_id)
    query = "SELECT * FROM read_parquet(?) WHERE run_id = ?"
    params: list[object] = [path, run_id]
    if task is not None:
        query += " AND task = ?"
        params.append(task)
    connection = duckdb.connect()
    try:
        frame = connection.execute(query + " ORDER BY task, doc_id", params).df()
    except duckdb.Error as error:
        raise HarnessError(f"The samples of run {run_id} cannot be read: {error}") from error
    finally:
        connection.close()
    for column in _SAMPLE_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    return frame
