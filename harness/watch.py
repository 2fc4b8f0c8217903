"""`harness watch DIR`: evaluate each training checkpoint under DIR once, as it appears.

A checkpoint is a sub-folder (`checkpoint-1000`, `step_1000`, `global_step1000`, or any name) with a
`config.json` and weights. It is evaluated only once it is complete: the config parses, every
safetensors file is as long as its own header says, every `.bin` is a whole zip archive, every shard
an index lists exists, and nothing in the folder changed for `settle_seconds`. Trainers that write to
`tmp-*` folders and rename them when done are handled by skipping hidden and `tmp` folders.

A checkpoint is skipped when the store already holds a run with the same model fingerprint (a hash of
the weight and config files, not the path) for the same experiment, tasks and limit, so restarting
the watcher, or a copied checkpoint, never costs a second evaluation.

The checkpoints are local folders; the store may be a folder or a prefix in object storage
(`--store s3://bucket/prefix`, `harness.store.location`), checked once before the first poll.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from harness.adapters import load_adapter
from harness.api import evaluate, step_from_path
from harness.errors import HarnessError
from harness.store import ResultStore, default_store_path
from harness.tasks import resolve_tasks

__all__ = ["CheckpointOutcome", "WatchSettings", "checkpoint_is_complete", "find_checkpoints", "watch"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")
_INDEX_SUFFIX = ".index.json"
# What a folder looks like on disk: (relative path, size, mtime in ns) of every file, sorted.
Snapshot = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class WatchSettings:
    directory: Path
    tasks: tuple[str, ...]
    adapter: str = "hf"  # a checkpoint folder is loaded as ADAPTER:FOLDER
    model_args: Mapping[str, str] = field(default_factory=dict)
    include_paths: tuple[Path, ...] = ()
    store: Path | None = None
    experiment: str | None = None  # None: the watched folder's name
    tags: tuple[str, ...] = ()  # stored with every run
    limit: int | None = None
    seed: int = 0
    bootstrap_resamples: int = 1000
    poll_seconds: float = 30.0
    settle_seconds: float = 10.0
    once: bool = False  # one pass over what is complete now, then return
    max_checkpoints: int | None = None  # return after evaluating this many


@dataclass(frozen=True)
class CheckpointOutcome:
    path: Path
    step: int | None
    status: str  # "evaluated", "skipped" (already in the store) or "failed"
    run_id: str | None = None
    message: str = ""


def _safetensors_complete(path: Path) -> bool:
    """True when the file is as long as its header says: a half-copied file is shorter."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            if header_length > size - 8:
                return False
            header = json.loads(handle.read(header_length))
    except (OSError, ValueError, struct.error):
        return False
    ends = [
        int(entry["data_offsets"][1])
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    return size >= 8 + header_length + max(ends, default=0)


def _weights_complete(path: Path) -> bool:
    if path.name.endswith(".safetensors"):
        return _safetensors_complete(path)
    if path.name.endswith(".bin"):
        # torch.save writes a zip archive; its central directory is written last.
        return zipfile.is_zipfile(path)
    return path.stat().st_size > 0


def checkpoint_is_complete(folder: Path) -> bool:
    """The structural checks; `settle_seconds` of stillness is checked by the watcher on top."""
    try:
        json.loads((folder / "config.json").read_text(encoding="utf-8"))
        files = [path for path in folder.iterdir() if path.is_file()]
        weights = [path for path in files if path.name.endswith(_WEIGHT_SUFFIXES)]
        for index in (path for path in files if path.name.endswith(_INDEX_SUFFIX)):
            shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
            if not all((folder / shard).is_file() for shard in shards):
                return False
        return bool(weights) and all(_weights_complete(path) for path in weights)
    except (OSError, ValueError, AttributeError):
        return False


def _snapshot(folder: Path) -> Snapshot:
    entries = []
    for path in sorted(folder.rglob("*")):
        try:
            if path.is_file():
                stat = path.stat()
                entries.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
        except OSError:  # a file renamed or removed while we look: the next poll sees the change
            continue
    return tuple(entries)


def _sort_key(folder: Path) -> tuple[int, int, str]:
    step = step_from_path(str(folder))
    return (0, step, folder.name) if step is not None else (1, 0, folder.name)


def find_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoint folders directly under `directory`, in step order."""
    if not directory.is_dir():
        raise HarnessError(f"cannot watch {directory}: not a folder")
    folders = [
        path for path in directory.iterdir() if path.is_dir() and not path.name.startswith((".", "tmp"))
    ]
    return sorted((path for path in folders if checkpoint_is_complete(path)), key=_sort_key)


class _Watcher:
    def __init__(self, settings: WatchSettings, log: TextIO) -> None:
        self.settings = settings
        self.log = log
        self.store_root = settings.store if settings.store is not None else default_store_path()
        self.experiment = settings.experiment or settings.directory.resolve().name
        self.task_names = {task.name for task in resolve_tasks(settings.tasks, settings.include_paths)}
        self.seen: dict[Path, Snapshot] = {}  # handled folders, and what they looked like then
        self.pending: dict[Path, tuple[Snapshot, float]] = {}  # complete, waiting to settle
        self.outcomes: list[CheckpointOutcome] = []

    def already_evaluated(self, fingerprint: str) -> str | None:
        for run in ResultStore(self.store_root).run_records():
            if run.model_fingerprint != fingerprint or run.status != "completed":
                continue
            if (run.experiment or None) != self.experiment:
                continue
            if run.provenance.settings.limit == self.settings.limit and self.task_names <= set(run.tasks):
                return run.run_id
        return None

    def ready(self, now: float) -> list[Path]:
        """Complete folders whose files have not changed for settle_seconds."""
        ready = []
        for folder in find_checkpoints(self.settings.directory):
            snapshot = _snapshot(folder)
            if self.seen.get(folder) == snapshot:
                continue  # handled already, and unchanged since
            first_seen = self.pending.get(folder)
            if first_seen is None or first_seen[0] != snapshot:
                self.pending[folder] = (snapshot, now)
                if self.settings.settle_seconds > 0:
                    continue
            elif now - first_seen[1] < self.settings.settle_seconds:
                continue
            ready.append(folder)
        return ready

    def handle(self, folder: Path) -> CheckpointOutcome:
        snapshot, _ = self.pending.pop(folder)
        self.seen[folder] = snapshot
        step = step_from_path(str(folder))
        try:
            adapter = load_adapter(f"{self.settings.adapter}:{folder}", dict(self.settings.model_args))
            previous = self.already_evaluated(adapter.fingerprint)
            if previous is not None:
                return CheckpointOutcome(
                    folder, step, "skipped", previous, f"same weights already evaluated as run {previous}"
                )
            report = evaluate(
                adapter,
                list(self.settings.tasks),
                include_paths=self.settings.include_paths,
                store=self.store_root,
                experiment=self.experiment,
                step=step,
                limit=self.settings.limit,
                seed=self.settings.seed,
                bootstrap_resamples=self.settings.bootstrap_resamples,
                show_progress=False,
                tags=self.settings.tags,
            )
        except Exception as error:  # one bad checkpoint must not stop a long-running watcher
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            return CheckpointOutcome(folder, step, "failed", None, message)
        summary = ", ".join(f"{s.task}/{s.metric}={s.value:.4g}" for s in report.scores)
        return CheckpointOutcome(folder, step, "evaluated", report.run_id, summary)

    def record(self, outcome: CheckpointOutcome) -> None:
        self.outcomes.append(outcome)
        detail = f" {outcome.run_id}" if outcome.status == "evaluated" else ""
        self.log.write(f"{outcome.status} {outcome.path.name}{detail}: {outcome.message}\n")
        self.log.flush()


def watch(
    settings: WatchSettings,
    *,
    stop: threading.Event | None = None,
    log: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Sequence[CheckpointOutcome]:
    """Poll `settings.directory` and evaluate complete checkpoints until stopped.

    Returns after one pass with `once`, after `max_checkpoints` evaluations, or when `stop` is set.
    """
    if settings.poll_seconds <= 0 and not settings.once:
        raise HarnessError("--poll-seconds must be more than 0")
    if settings.max_checkpoints is not None and settings.max_checkpoints < 1:
        raise HarnessError("--max-checkpoints must be 1 or more")
    find_checkpoints(settings.directory)  # a missing folder fails now, not at the first poll
    watcher = _Watcher(settings, log or sys.stderr)
    # So does a store that cannot be used (a newer schema; for s3:// a missing bucket, wrong
    # credentials, an unreachable endpoint): one line now, not a "failed" line per checkpoint.
    ResultStore(watcher.store_root).runs()
    stop = stop or threading.Event()
    evaluated = 0
    first_pass = True
    while not stop.is_set():
        now = clock()
        ready = watcher.ready(now)
        if settings.once and first_pass and settings.settle_seconds > 0:
            # One pass still needs two looks settle_seconds apart to know a folder is not being written;
            # the second look is dated exactly settle_seconds later so timer jitter cannot skip it.
            first_pass = False
            if stop.wait(settings.settle_seconds):
                break
            ready = watcher.ready(now + settings.settle_seconds)
        for folder in ready:
            outcome = watcher.handle(folder)
            watcher.record(outcome)
            evaluated += outcome.status == "evaluated"
            if settings.max_checkpoints is not None and evaluated >= settings.max_checkpoints:
                return tuple(watcher.outcomes)
            if stop.is_set():
                break
        if settings.once:
            break
        stop.wait(settings.poll_seconds)
    return tuple(watcher.outcomes)
