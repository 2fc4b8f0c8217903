"""The results store: a directory of plain Parquet tables, one part file per run and table.

Layout (readable with pandas, pyarrow or DuckDB without harness installed)::

    root/_harness_store.json          {"schema_version": 1, "format": "harness-store"}
    root/runs/part-<run_id>.parquet   one row per run; written last, so it is the commit marker
    root/scores/part-<run_id>.parquet
    root/samples/part-<run_id>.parquet
    root/ratings/part-<campaign>.parquet  human ratings (`harness.ratings.export`)
    root/<table>/pack-<pack_id>.parquet   many runs' rows, after `harness store compact`
    root/_compaction/manifest-<pack_id>.json  commits a pack: the runs it holds (`harness.store.packs`)

Files are never rewritten in place: each part is written to a dot-named temp file in the same
directory and moved into place with `os.replace`, so a reader sees either a whole file or none.
Dataset readers skip dot-files, and temp names do not end in `.parquet`, so DuckDB's
`*.parquet` glob (which does match dot-files) skips them too. Scores and samples of a run whose
runs row is missing (a writer killed mid-run) are invisible to every reader here, and so is
`root/_quarantine/`, where `check_store(root, repair=True)` moves damaged and orphaned parts.

This package alone knows the store's files. Its parts:

* `layout`: the marker, the tables' schemas, part file names, the marker check, where the request
  cache of a store lives.
* `location`: local folders and `s3://` prefixes alike: listing, reading and writing whole files.
* `packs`: pack files and the manifests that commit them (`root/_compaction/`): which runs each
  pack holds, which loose parts readers then ignore.
* `compaction`: `compact_store` (`harness store compact`), merging many runs' parts into packs while
  writers and readers work.
* `check`: `check_store`, finding damaged and orphaned parts and stale temp files, and moving them
  into `_quarantine/` (`harness store check --repair`).
* `records`: typed runs, provenance, scores and samples; `assemble_run` and `record_provenance`, the one
  way a run is put together (by `harness.evaluate`, `harness.score` and the synthetic stores).
* `statistics`: the one codec of per-document statistics keys (`metric/statistic`).
* `reader`: every read (`ResultStore`'s, the leaderboard's `list_store` / `load_store`, `read_table`
  for the ratings table).
* `result_store`: `ResultStore`, which writes runs and reads them back; `write_part` (ratings export).
* `selectors`: `resolve_run`, choosing a run by `latest:EXP`, `EXP@STEP`, `tag:NAME`, ...
"""

from __future__ import annotations

from harness.store.check import DEFAULT_STALE_AFTER, StoreCheck, StoreFinding, check_store
from harness.store.compaction import CompactionResult, compact_store
from harness.store.layout import (
    CACHE_FILE_NAMES,
    MARKER_NAME,
    SCHEMA_VERSION,
    STORE_FORMAT,
    TABLES,
    default_store_path,
    new_run_id,
    request_cache_path,
)
from harness.store.reader import (
    DamagedPartWarning,
    StoreData,
    StoreListing,
    list_store,
    load_samples,
    load_store,
    part_entries,
    read_table,
    sample_counts,
)
from harness.store.records import (
    AssembledRun,
    Document,
    Provenance,
    RunRecord,
    RunSettings,
    SampleRecord,
    ScoreRecord,
    TaskResults,
    Versions,
    assemble_run,
    normalise_tags,
    record_provenance,
)
from harness.store.result_store import ResultStore, write_error, write_part
from harness.store.selectors import SELECTOR_HELP, resolve_run

__all__ = [
    "CACHE_FILE_NAMES",
    "DEFAULT_STALE_AFTER",
    "MARKER_NAME",
    "SCHEMA_VERSION",
    "SELECTOR_HELP",
    "STORE_FORMAT",
    "TABLES",
    "AssembledRun",
    "CompactionResult",
    "DamagedPartWarning",
    "Document",
    "Provenance",
    "ResultStore",
    "RunRecord",
    "RunSettings",
    "SampleRecord",
    "ScoreRecord",
    "StoreCheck",
    "StoreData",
    "StoreFinding",
    "StoreListing",
    "TaskResults",
    "Versions",
    "assemble_run",
    "check_store",
    "compact_store",
    "default_store_path",
    "list_store",
    "load_samples",
    "load_store",
    "new_run_id",
    "normalise_tags",
    "part_entries",
    "read_table",
    "record_provenance",
    "request_cache_path",
    "resolve_run",
    "sample_counts",
    "write_error",
    "write_part",
]
