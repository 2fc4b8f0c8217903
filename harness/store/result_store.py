"""`ResultStore`: writes whole runs and reads them back, through `harness.store.reader`."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.store.frames import join_runs_table, oldest_first, to_frame
from harness.store.layout import (
    MARKER_NAME,
    RUN_ID_RE,
    RUNS_SCHEMA,
    SAMPLES_SCHEMA,
    SCHEMAS,
    SCORES_SCHEMA,
    TABLES,
    marker_text,
    part_name,
    part_path,
    validate_store,
)
from harness.store.location import is_file, is_remote, make_dirs, remove, uri, write_file
from harness.store.packs import read_pack_set
from harness.store.reader import read_table
from harness.store.records import AssembledRun, Provenance, RunRecord, SampleRecord, ScoreRecord

__all__ = ["ResultStore", "write_error", "write_part"]


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
        "provenance": _to_json(run.provenance.to_dict()),
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


def write_part(root: str | Path, table: str, key: str, data: pa.Table) -> Path:
    """Write (or replace, whole) one part file of `table`; readers see the old part or the new one."""
    target = part_path(root, table, key)
    write_file(os.path.join(uri(root), table, target.name), lambda handle: pq.write_table(data, handle))
    return target


def write_error(root: str | Path, error: OSError) -> str:
    """One line for a write the filesystem refused: read-only store, no permission, disk full."""
    where = f" ({error.filename})" if error.filename else ""
    return f"cannot write to results store {root}: {error.strerror or error}{where}"


def _run_record(row: Mapping[str, Any]) -> RunRecord:
    step = row["step"]
    experiment = row["experiment"]
    return RunRecord(
        run_id=str(row["run_id"]),
        created_at=pd.Timestamp(row["created_at"]).to_pydatetime(),
        model=str(row["model"]),
        model_fingerprint=str(row["model_fingerprint"]),
        experiment=experiment if isinstance(experiment, str) else None,
        step=None if pd.isna(step) else int(step),
        tasks=tuple(str(task) for task in row["tasks"]),
        provenance=Provenance.from_json(str(row["provenance"])),
        status=str(row["status"]),
    )


class ResultStore:
    """Reads and writes a results store directory; constructing one touches nothing on disk."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    @property
    def location(self) -> str:
        """The root as a string: a folder, or an `s3://bucket/prefix` URI (`harness.store.location`)."""
        return uri(self.root)

    @property
    def reported_root(self) -> Path | str:
        """The root as reports give it: a local folder's Path, or the `s3://bucket/prefix` URI (a Path
        would print it as `s3:/bucket/prefix`)."""
        return self.location if is_remote(self.root) else self.root

    def exists(self) -> bool:
        if is_remote(self.location):
            # A missing bucket, wrong credentials or an unreachable endpoint: one line, not "no store".
            return validate_store(self.location)
        return is_file(os.path.join(self.location, MARKER_NAME))

    def _create(self) -> None:
        # The marker goes first: another process creating the same store concurrently then
        # sees either an empty directory or a valid store, never a half-made one.
        if not validate_store(self.location):
            make_dirs(self.location)
            marker = os.path.join(self.location, MARKER_NAME)
            write_file(marker, lambda handle: handle.write(marker_text().encode("utf-8")))
        # Always, not only after writing the marker: a concurrent creator may have written the
        # marker but not yet the table directories.
        for table in TABLES:
            make_dirs(os.path.join(self.location, table))

    # -- writing -----------------------------------------------------------------------------------

    def write_run(
        self, run: RunRecord, scores: Sequence[ScoreRecord], samples: Sequence[SampleRecord]
    ) -> None:
        """Commit one run: samples, then scores, then the runs row that makes them visible."""
        if not RUN_ID_RE.match(run.run_id):
            raise ValueError(f"run_id {run.run_id!r} is not usable as a file name")
        foreign = {r.run_id for r in scores} | {r.run_id for r in samples}
        foreign.discard(run.run_id)
        if foreign:
            raise ValueError(f"records for runs {sorted(foreign)} passed with run {run.run_id!r}")
        # Build every table before touching disk so bad input cannot leave orphan parts behind.
        runs_table = _runs_table(run)
        scores_table = _scores_table(scores)
        samples_table = _samples_table(samples)
        written: list[str] = []
        try:
            self._create()
            packed = read_pack_set(self.location).packed("runs")  # compacted runs have no runs part
            if is_file(os.path.join(self.location, "runs", part_name(run.run_id))) or run.run_id in packed:
                raise HarnessError(f"run {run.run_id} already exists in results store {self.location}")
            for table, data in (("samples", samples_table), ("scores", scores_table), ("runs", runs_table)):
                # Listed before the write: a write that lands and then fails (the folder's fsync, an
                # upload the server completed after the client gave up) is taken back too.
                written.append(os.path.join(self.location, table, part_name(run.run_id)))
                write_part(self.location, table, run.run_id, data)
        except (OSError, HarnessError) as error:
            # A full disk, a read-only store, an object store that refused: take back the parts
            # already written (each part's own temp file is gone already), so the store holds the
            # whole run or none of it.
            for path in reversed(written):
                with contextlib.suppress(OSError, HarnessError):
                    remove(path)
            if isinstance(error, HarnessError):
                raise
            raise HarnessError(write_error(self.root, error) + "; nothing of the run was stored") from error

    def write(self, assembled: AssembledRun) -> None:
        """Commit a run made by `assemble_run`."""
        self.write_run(assembled.run, assembled.scores, assembled.samples)

    # -- reading -----------------------------------------------------------------------------------

    def _read(
        self,
        table: str,
        run_ids: Sequence[str] | None,
        filt: ds.Expression | None = None,
        *,
        strict: bool = False,
    ) -> pa.Table:
        # Reads of every run skip a damaged part with a warning; a read of one named run (strict)
        # cannot give what was asked for and says which part is damaged.
        return read_table(self.location, table, SCHEMAS[table], run_ids, filt=filt, strict=strict)

    def _runs_table(self, run_id: str | None) -> pa.Table:
        """Committed runs (one, if `run_id` is given), oldest first."""
        if not validate_store(self.location):
            return RUNS_SCHEMA.empty_table()
        if run_id is not None:
            # One run's part file is found by name, so a single-run read stays cheap in big stores.
            table = self._read("runs", [run_id], strict=True)
            return oldest_first(table.filter(pc.equal(table["run_id"], run_id)))
        return oldest_first(self._read("runs", None))

    def runs(self) -> pd.DataFrame:
        """One row per committed run, oldest first."""
        return to_frame(self._runs_table(None))

    def run_records(self) -> tuple[RunRecord, ...]:
        """Every committed run, typed (provenance included), oldest first."""
        return tuple(_run_record(row) for row in self.runs().to_dict("records"))

    def scores_table(self, run_id: str | None = None) -> pa.Table:
        """`scores(run_id)` as an Arrow table: what `harness scores` prints from, no DataFrame built."""
        runs = self._runs_table(run_id)
        scores = self._read("scores", runs["run_id"].to_pylist(), strict=run_id is not None)
        return join_runs_table(scores, runs)

    def scores(self, run_id: str | None = None) -> pd.DataFrame:
        """Score rows of committed runs, with each run's model, experiment, step and created_at."""
        return to_frame(self.scores_table(run_id))

    def samples(self, run_id: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Per-document rows of committed runs, oldest run first; JSON strings stay as stored
        (`harness.store.statistics` reads the statistics)."""
        ids = self._runs_table(run_id)["run_id"].to_pylist()
        filt = ds.field("run_id").isin(ids)
        if task is not None:
            filt = filt & (ds.field("task") == task)
        return to_frame(self._read("samples", ids, filt, strict=run_id is not None))
