"""Shaping what the store read: runs oldest first, and score rows joined with their run's columns.

The join is done on Arrow tables with Arrow's kernels (a lookup of each row's run, a stable sort, a
take) rather than a pandas merge: a store at team scale holds hundreds of thousands of score rows,
and `harness scores` prints them without ever building a DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd

# The columns of a run that every score row carries once read.
RUN_COLUMNS_FOR_SCORES = ["model", "experiment", "step", "created_at"]


def to_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    if "step" in frame.columns:
        # A nullable integer dtype keeps `step` an integer column whether or not any run lacks one.
        frame["step"] = frame["step"].astype("Int64")
    return frame


def oldest_first(runs: pa.Table) -> pa.Table:
    """Runs by creation time, ties by run id."""
    return runs.sort_by([("created_at", "ascending"), ("run_id", "ascending")])


def runs_frame(table: pa.Table) -> pd.DataFrame:
    """Runs, oldest first."""
    return to_frame(oldest_first(table))


def join_runs_table(scores: pa.Table, runs: pa.Table) -> pa.Table:
    """Score rows with their run's model, experiment, step and created_at: oldest run first, each
    run's rows in stored order. An inner join: rows whose run is not among `runs` are dropped."""
    runs = oldest_first(runs)
    position = pc.index_in(scores["run_id"], value_set=runs["run_id"])
    known = pc.is_valid(position)
    if not pc.all(known).as_py():
        scores, position = scores.filter(known), pc.filter(position, known)
    order = pc.sort_indices(position)  # a stable sort: a run's rows keep their order
    joined, position = scores.take(order), pc.take(position, order)
    for name in RUN_COLUMNS_FOR_SCORES:
        joined = joined.append_column(runs.schema.field(name), pc.take(runs[name], position))
    return joined


__all__ = ["RUN_COLUMNS_FOR_SCORES", "join_runs_table", "oldest_first", "runs_frame", "to_frame"]
