"""The results store: a directory of plain Parquet tables, one part file per run and table.

Layout (readable with pandas, pyarrow or DuckDB without harness installed)::

    root/_harness_store.json          {"schema_version": 1, "format": "harness-store"}
    root/runs/part-<run_id>.parquet   one row per run; written last, so it is the commit marker
    root/scores/part-<run_id>.parquet
    root/samples/part-<run_id>.parquet
    root/ratings/                     reserved for later

Files are never rewritten in place: each part is written to a dot-named temp file in the same
directory and moved into place with `os.replace`, so a reader sees either a whole file or none.
Dataset readers skip dot-files, and temp names do not end in `.parquet`, so DuckDB's
`*.parquet` glob (which does match dot-files) skips them too. Scores and samples of a run whose
runs row is missing (a writer killed mid-run) are invisible to every reader here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness.errors import HarnessError

__all__ = [
    "SCHEMA_VERSION",
    "ResultStore",
    "RunRecord",
    "SampleRecord",
    "ScoreRecord",
    "atomic_write",
    "default_store_path",
    "new_run_id",
]

SCHEMA_VERSION = 1
STORE_FORMAT = "harness-store"
MARKER_NAME = "_harness_store.json"
TABLES = ("runs", "scores", "samples", "ratings")
DEFAULT_STORE_DIR = "harness_store"

# Run ids become file names, so keep them to characters that are safe on every filesystem and
# never start with "." or "_", which dataset readers would silently skip.
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

# The runner keeps its request cache inside the store directory, and may create it before the
# first run is written, so these names alone do not make a directory "someone else's".
CACHE_FILE_NAMES = frozenset(f"cache.sqlite{suffix}" for suffix in ("", "-wal", "-shm", "-journal"))

_METADATA = {b"harness.schema_version": str(SCHEMA_VERSION).encode()}


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields), metadata=_METADATA)


RUNS_SCHEMA = _schema(
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("model_fingerprint", pa.string(), nullable=False),
    pa.field("experiment", pa.string()),
    pa.field("step", pa.int64()),
    pa.field("tasks", pa.list_(pa.string()), nullable=False),
    pa.field("provenance", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
)

SCORES_SCHEMA = _schema(
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("task_version", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64(), nullable=False),
    pa.field("stderr", pa.float64()),
    pa.field("ci_low", pa.float64()),
    pa.field("ci_high", pa.float64()),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("higher_is_better", pa.bool_(), nullable=False),
    pa.field("signature", pa.string(), nullable=False),
)

SAMPLES_SCHEMA = _schema(
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("doc_id", pa.int64(), nullable=False),
    pa.field("prompt", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("prediction", pa.string()),
    pa.field("choice_logprobs", pa.list_(pa.float64())),
    pa.field("statistics", pa.string(), nullable=False),
    pa.field("group", pa.string()),
    pa.field("metadata", pa.string(), nullable=False),
)

# Columns of runs that scores() joins onto each score row.
_RUN_COLUMNS_FOR_SCORES = ["model", "experiment", "step", "created_at"]


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    created_at: datetime  # timezone-aware; stored as UTC
    model: str
    model_fingerprint: str
    experiment: str | None
    step: int | None
    tasks: tuple[str, ...]
    provenance: Mapping[str, Any] = field(default_factory=dict)  # stored as a JSON string
    status: str = "completed"


@dataclass(frozen=True)
class ScoreRecord:
    run_id: str
    task: str
    task_version: str
    metric: str
    value: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    higher_is_better: bool
    signature: str


@dataclass(frozen=True)
class SampleRecord:
    run_id: str
    task: str
    doc_id: int
    prompt: str
    target: str
    prediction: str | None
    choice_logprobs: tuple[float, ...] | None
    statistics: Mapping[str, float] = field(default_factory=dict)  # stored as a JSON string
    group: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # stored as a JSON string


def default_store_path() -> Path:
    """`$HARNESS_STORE` if set, else `./harness_store`."""
    env = os.environ.get("HARNESS_STORE")
    return Path(env) if env else Path(DEFAULT_STORE_DIR)


def new_run_id() -> str:
    """UTC time to the second (so ids sort by time) plus 32 random bits, e.g. `20261121T132501-3f9a1c0e`.

    The suffix is wider than strictly needed so that many processes starting in the same second
    cannot realistically collide.
    """
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def _to_json(value: Mapping[str, Any]) -> str:
    # sort_keys keeps the stored text stable, so equal provenance compares equal in SQL.
    return json.dumps(dict(value), sort_keys=True, ensure_ascii=False, default=str)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("RunRecord.created_at must be timezone-aware (use datetime.now(UTC))")
    return moment.astimezone(UTC)


def _runs_table(run: RunRecord) -> pa.Table:
    row = {
        "run_id": run.run_id,
        "created_at": _utc(run.created_at),
        "model": run.model,
        "model_fingerprint": run.model_fingerprint,
        "experiment": run.experiment,
        "step": run.step,
        "tasks": list(run.tasks),
        "provenance": _to_json(run.provenance),
        "status": run.status,
    }
    return pa.Table.from_pylist([row], schema=RUNS_SCHEMA)


def _scores_table(scores: Sequence[ScoreRecord]) -> pa.Table:
    rows = [
        {
            "run_id": s.run_id,
            "task": s.task,
            "task_version": s.task_version,
            "metric": s.metric,
            "value": float(s.value),
            "stderr": None if s.stderr is None else float(s.stderr),
            "ci_low": None if s.ci_low is None else float(s.ci_low),
            "ci_high": None if s.ci_high is None else float(s.ci_high),
            "n": int(s.n),
            "higher_is_better": bool(s.higher_is_better),
            "signature": s.signature,
        }
        for s in scores
    ]
    return pa.Table.from_pylist(rows, schema=SCORES_SCHEMA)


def _samples_table(samples: Sequence[SampleRecord]) -> pa.Table:
    rows = [
        {
            "run_id": s.run_id,
            "task": s.task,
            "doc_id": int(s.doc_id),
            "prompt": s.prompt,
            "target": s.target,
            "prediction": s.prediction,
            "choice_logprobs": None if s.choice_logprobs is None else [float(x) for x in s.choice_logprobs],
            "statistics": _to_json(s.statistics),
            "group": s.group,
            "metadata": _to_json(s.metadata),
        }
        for s in samples
    ]
    return pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened for this.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write via `write(file)` to a dot-named temp file next to `target`, fsync, then rename."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # Not tempfile.mkstemp: its 0600 mode would make the finished file private to this user,
    # whereas os.open honours the umask like any ordinary file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _write_parquet(table: pa.Table, target: Path) -> None:
    atomic_write(target, lambda handle: pq.write_table(table, handle))


def _part_name(run_id: str) -> str:
    return f"part-{run_id}.parquet"


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    if "step" in frame.columns:
        # A nullable integer dtype keeps `step` an integer column whether or not any run lacks one.
        frame["step"] = frame["step"].astype("Int64")
    return frame


class ResultStore:
    """Reads and writes a results store directory; constructing one touches nothing on disk."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    @property
    def _marker(self) -> Path:
        return self.root / MARKER_NAME

    def exists(self) -> bool:
        return self._marker.is_file()

    def _check(self) -> bool:
        """True for a valid store, False for nothing (or an empty directory) at root; else raise."""
        if not self.root.exists():
            return False
        if not self.root.is_dir():
            raise HarnessError(f"results store path {self.root} is a file, not a store directory")
        if not self._marker.is_file():
            # Dot-files are ignored so a concurrent writer's half-written marker does not count.
            foreign = [
                entry.name
                for entry in self.root.iterdir()
                if not entry.name.startswith(".") and entry.name not in CACHE_FILE_NAMES
            ]
            if foreign:
                raise HarnessError(
                    f"{self.root} is a non-empty directory but not a harness results store "
                    f"(no {MARKER_NAME}); choose another store path"
                )
            return False
        try:
            marker = json.loads(self._marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HarnessError(f"cannot read results store marker {self._marker}: {exc}") from exc
        if not isinstance(marker, dict) or marker.get("format") != STORE_FORMAT:
            raise HarnessError(f"{self._marker} does not describe a harness results store")
        version = marker.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise HarnessError(
                f"results store {self.root} has schema version {version}, newer than the "
                f"{SCHEMA_VERSION} this harness supports; upgrade harness to read it"
            )
        return True

    def _create(self) -> None:
        # The marker goes first: another process creating the same store concurrently then
        # sees either an empty directory or a valid store, never a half-made one.
        if not self._check():
            self.root.mkdir(parents=True, exist_ok=True)
            payload = json.dumps({"schema_version": SCHEMA_VERSION, "format": STORE_FORMAT}, indent=2)
            atomic_write(self._marker, lambda handle: handle.write(payload.encode("utf-8") + b"\n"))
        # Always, not only after writing the marker: a concurrent creator may have written the
        # marker but not yet the table directories.
        for table in TABLES:
            (self.root / table).mkdir(exist_ok=True)

    def write_run(
        self, run: RunRecord, scores: Sequence[ScoreRecord], samples: Sequence[SampleRecord]
    ) -> None:
        """Commit one run: samples, then scores, then the runs row that makes them visible."""
        if not _RUN_ID_RE.match(run.run_id):
            raise ValueError(f"run_id {run.run_id!r} is not usable as a file name")
        foreign = {r.run_id for r in scores} | {r.run_id for r in samples}
        foreign.discard(run.run_id)
        if foreign:
            raise ValueError(f"records for runs {sorted(foreign)} passed with run {run.run_id!r}")
        # Build every table before touching disk so bad input cannot leave orphan parts behind.
        runs_table = _runs_table(run)
        scores_table = _scores_table(scores)
        samples_table = _samples_table(samples)
        self._create()
        name = _part_name(run.run_id)
        if (self.root / "runs" / name).exists():
            raise HarnessError(f"run {run.run_id} already exists in results store {self.root}")
        _write_parquet(samples_table, self.root / "samples" / name)
        _write_parquet(scores_table, self.root / "scores" / name)
        _write_parquet(runs_table, self.root / "runs" / name)

    def _committed_parts(self, table: str, run_ids: Sequence[str]) -> list[str]:
        directory = self.root / table
        paths = (directory / _part_name(run_id) for run_id in run_ids)
        return [str(path) for path in paths if path.is_file()]

    @staticmethod
    def _read(schema: pa.Schema, paths: Sequence[str], filt: ds.Expression | None = None) -> pa.Table:
        if not paths:
            return schema.empty_table()
        # An explicit schema lets older part files with fewer columns read as nulls.
        dataset = ds.dataset(list(paths), schema=schema, format="parquet")
        return dataset.to_table(filter=filt)

    def _runs_table(self, run_id: str | None = None) -> pa.Table:
        directory = self.root / "runs"
        if not self._check() or not directory.is_dir():
            return RUNS_SCHEMA.empty_table()
        if run_id is not None:
            # One run's part file is found by name, so a single-run read stays cheap in big stores.
            return self._read(RUNS_SCHEMA, self._committed_parts("runs", [run_id]))
        names = sorted(p.name for p in directory.iterdir() if p.name.startswith("part-"))
        return self._read(RUNS_SCHEMA, [str(directory / n) for n in names if n.endswith(".parquet")])

    def _runs(self, run_id: str | None) -> pd.DataFrame:
        frame = _to_pandas(self._runs_table(run_id))
        if run_id is not None:
            frame = frame[frame["run_id"] == run_id]
        return frame.sort_values(["created_at", "run_id"], ignore_index=True)

    def runs(self) -> pd.DataFrame:
        """One row per committed run, oldest first."""
        return self._runs(None)

    def scores(self, run_id: str | None = None) -> pd.DataFrame:
        """Score rows of committed runs, with each run's model, experiment, step and created_at."""
        runs = self._runs(run_id)
        ids = runs["run_id"].tolist()
        table = self._read(SCORES_SCHEMA, self._committed_parts("scores", ids))
        frame = _to_pandas(table)
        # The inner join also drops rows whose run_id disagrees with the committed runs.
        merged = frame.merge(runs[["run_id", *_RUN_COLUMNS_FOR_SCORES]], on="run_id", how="inner")
        return merged.sort_values(["created_at", "run_id"], kind="stable", ignore_index=True)

    def samples(self, run_id: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Per-document rows of committed runs, oldest run first; JSON strings stay as stored."""
        ids = self._runs(run_id)["run_id"].tolist()
        filt = ds.field("run_id").isin(ids)
        if task is not None:
            filt = filt & (ds.field("task") == task)
        table = self._read(SAMPLES_SCHEMA, self._committed_parts("samples", ids), filt)
        return _to_pandas(table)
