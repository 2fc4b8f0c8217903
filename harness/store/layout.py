"""Where the store's files are and what they hold: the marker, the tables' schemas, part names.

Nothing outside `harness.store` names a store file; readers and writers in this package find them here.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from harness.errors import HarnessError
from harness.store.location import is_dir, is_remote, list_files, local_directory, read_bytes, uri

SCHEMA_VERSION = 1
STORE_FORMAT = "harness-store"
MARKER_NAME = "_harness_store.json"
TABLES = ("runs", "scores", "samples", "ratings")
DEFAULT_STORE_DIR = "harness_store"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"

# Run ids become file names, so keep them to characters that are safe on every filesystem and
# never start with "." or "_", which dataset readers would silently skip.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

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

SCHEMAS = {"runs": RUNS_SCHEMA, "scores": SCORES_SCHEMA, "samples": SAMPLES_SCHEMA}


def default_store_path() -> Path:
    """`$HARNESS_STORE` if set, else `./harness_store`. An `s3://` URI comes back folded into a Path
    (`s3:/bucket/prefix`); `harness.store.location.uri` restores it."""
    env = os.environ.get("HARNESS_STORE")
    return Path(env) if env else Path(DEFAULT_STORE_DIR)


def request_cache_path(root: str | Path) -> Path:
    """Where runs on this store keep their request cache: inside a local store; for a store in object
    storage (SQLite cannot live there) under `$XDG_CACHE_HOME/harness` (`~/.cache/harness`), one
    file per bucket and prefix. `harness run --cache PATH` puts it anywhere else."""
    return local_directory(root) / "cache.sqlite"


def new_run_id() -> str:
    """UTC time to the second (so ids sort by time) plus 32 random bits, e.g. `20261121T132501-3f9a1c0e`.

    The suffix is wider than strictly needed so that many processes starting in the same second
    cannot realistically collide.
    """
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def part_name(run_id: str) -> str:
    return f"{PART_PREFIX}{run_id}{PART_SUFFIX}"


def part_path(root: str | Path, table: str, run_id: str) -> Path:
    return Path(root) / table / part_name(run_id)


def run_id_of(name: str) -> str | None:
    """The run id a part file name carries; None for anything else (a writer's dot-named temp file)."""
    if name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX):
        return name[len(PART_PREFIX) : -len(PART_SUFFIX)]
    return None


QUARANTINE_DIR = "_quarantine"  # `harness store check --repair` moves damaged files here; no reader looks


def is_temp_name(name: str) -> bool:
    """A writer's temp file (`harness.files.atomic_write`): dot-named, ending in `.tmp`."""
    return name.startswith(".") and name.endswith(".tmp")


def marker_text() -> str:
    return json.dumps({"schema_version": SCHEMA_VERSION, "format": STORE_FORMAT}, indent=2) + "\n"


def _validate_remote(root: str) -> bool:
    """`validate_store` for a prefix in object storage: the bucket must exist (HarnessError, one line,
    when it does not, or the credentials or endpoint are wrong); the prefix may be empty."""
    if not is_dir(root):
        raise HarnessError(f"results store {root}: the bucket does not exist (or is not reachable)")
    names = {name for name, _, _ in list_files(root)}
    if MARKER_NAME not in names:
        if any(not name.startswith(".") for name in names):
            raise HarnessError(
                f"{root} holds objects but is not a harness results store (no {MARKER_NAME}); "
                "choose another store prefix"
            )
        return False
    try:
        content = json.loads(read_bytes(f"{root}/{MARKER_NAME}").decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read results store marker {root}/{MARKER_NAME}: {exc}") from exc
    return _check_marker(content, f"{root}/{MARKER_NAME}", root)


def validate_store(root: str | Path) -> bool:
    """True for a valid store, False for nothing (or an empty directory) at root; else HarnessError."""
    if is_remote(root):
        return _validate_remote(uri(root))
    root = Path(root)
    if not root.exists():
        return False
    if not root.is_dir():
        raise HarnessError(f"results store path {root} is a file, not a store directory")
    marker = root / MARKER_NAME
    if not marker.is_file():
        # Dot-files are ignored so a concurrent writer's half-written marker does not count.
        foreign = [
            entry.name
            for entry in root.iterdir()
            if not entry.name.startswith(".") and entry.name not in CACHE_FILE_NAMES
        ]
        # A concurrent creator may have renamed its marker in between the check above and the listing
        # (the listing then shows the marker and its tables): look once more before calling it foreign.
        if foreign and not marker.is_file():
            raise HarnessError(
                f"{root} is a non-empty directory but not a harness results store "
                f"(no {MARKER_NAME}); choose another store path"
            )
        if not foreign:
            return False
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read results store marker {marker}: {exc}") from exc
    return _check_marker(content, str(marker), str(root))


def _check_marker(content: object, marker: str, root: str) -> bool:
    if not isinstance(content, dict) or content.get("format") != STORE_FORMAT:
        raise HarnessError(f"{marker} does not describe a harness results store")
    version = content.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise HarnessError(
            f"results store {root} has schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this harness supports; upgrade harness to read it"
        )
    return True
