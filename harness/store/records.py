"""The store's records, typed: a run with its provenance, its score rows and its per-document samples.

`assemble_run` is the one place a run is put together, from what each task produced and from the
`Provenance` that `record_provenance` fills in (harness and Python versions, host, git revision);
`harness run` (`harness.evaluate`), `harness score` (`harness.score`) and the synthetic stores of the
leaderboard's benchmark all go through both.

Provenance is stored as one flat JSON object in the runs table (readable without harness), and read
back typed with `Provenance.from_dict`, so no caller fishes fields out of JSON.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.store.layout import new_run_id
from harness.versions import harness_version

if TYPE_CHECKING:
    from harness.metrics.base import Score

__all__ = [
    "AssembledRun",
    "Document",
    "Provenance",
    "RunRecord",
    "RunSettings",
    "SampleRecord",
    "ScoreRecord",
    "TaskResults",
    "Versions",
    "assemble_run",
    "normalise_tags",
    "record_provenance",
]

# Keys of the adapter's own record that read back into `Provenance.model`; an adapter's other keys
# (library versions, backend arguments) read back into `details`, since the stored object is flat.
MODEL_KEYS = ("adapter", "dtype", "device", "batch_size")


@dataclass(frozen=True)
class Versions:
    harness: str | None = None
    python: str | None = None
    libraries: Mapping[str, str | None] = field(default_factory=dict)  # those that determine the numbers


@dataclass(frozen=True)
class RunSettings:
    """The settings that, with the model and the tasks, determine a run's numbers."""

    seed: int | None = None
    limit: int | None = None  # documents per task; None for all
    bootstrap_resamples: int | None = None


@dataclass(frozen=True)
class Provenance:
    """How a run was made. Stored flat (`to_dict`): the model's record and `details` at the top level
    beside harness, python, libraries, seed, limit, bootstrap_resamples, host, git_revision, tags, cost."""

    versions: Versions = field(default_factory=Versions)
    settings: RunSettings = field(default_factory=RunSettings)
    model: Mapping[str, Any] = field(default_factory=dict)  # the adapter's record: dtype, device, batch size
    host: str | None = None
    git_revision: str | None = None
    tags: tuple[str, ...] = ()
    cost: Mapping[str, Any] = field(default_factory=dict)  # per task: wall time, tokens, requests, ...
    details: Mapping[str, Any] = field(default_factory=dict)  # what one kind of run adds: argv, files, ...

    def to_dict(self) -> dict[str, Any]:
        known: dict[str, Any] = {
            "harness": self.versions.harness,
            "python": self.versions.python,
            "libraries": dict(self.versions.libraries) or None,
            "seed": self.settings.seed,
            "limit": self.settings.limit,
            "bootstrap_resamples": self.settings.bootstrap_resamples,
            "host": self.host,
            "git_revision": self.git_revision,
            "tags": list(self.tags) or None,
            "cost": dict(self.cost) or None,
        }
        # The run's own settings win over an adapter that records a setting of the same name (mock: seed).
        record = {**self.model, **self.details}
        record.update((key, value) for key, value in known.items() if value is not None)
        return record

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Provenance:
        """Typed provenance from its stored form; a known key of an unexpected type stays in `details`."""
        rest = dict(raw)

        def take(key: str, *types: type) -> Any:
            value = rest.get(key)
            if value is not None and isinstance(value, types) and not isinstance(value, bool):
                return rest.pop(key)
            if value is None:
                rest.pop(key, None)
            return None

        versions = Versions(take("harness", str), take("python", str), take("libraries", dict) or {})
        settings = RunSettings(take("seed", int), take("limit", int), take("bootstrap_resamples", int))
        host, git_revision = take("host", str), take("git_revision", str)
        tags = rest.get("tags")
        if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
            del rest["tags"]
        else:
            tags = []
        cost = take("cost", dict) or {}
        model = {key: rest.pop(key) for key in MODEL_KEYS if key in rest}
        return cls(versions, settings, model, host, git_revision, tuple(tags), cost, rest)

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        """Typed provenance from the runs table's column; unreadable text reads as unknown provenance."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError):
            return cls()
        return cls.from_dict(raw) if isinstance(raw, dict) else cls()


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    created_at: datetime  # timezone-aware; stored as UTC
    model: str
    model_fingerprint: str
    experiment: str | None
    step: int | None
    tasks: tuple[str, ...]
    # A plain mapping (the stored JSON's shape) is accepted too and read as `Provenance.from_dict`.
    provenance: Provenance = field(default_factory=Provenance)
    status: str = "completed"

    def __post_init__(self) -> None:
        if not isinstance(self.provenance, Provenance):
            object.__setattr__(self, "provenance", Provenance.from_dict(self.provenance))

    @property
    def tags(self) -> tuple[str, ...]:
        return self.provenance.tags


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


@dataclass(frozen=True)
class Document:
    """One scored document of a task, before it belongs to a run."""

    doc_id: int
    prompt: str
    target: str
    prediction: str | None
    choice_logprobs: Sequence[float] | None
    statistics: Mapping[str, float]  # from `harness.store.statistics.encode_statistics`
    group: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # e.g. every reference, when there are several


@dataclass(frozen=True)
class TaskResults:
    """What one task (or task group) contributes to a run: its score rows and scored documents."""

    name: str
    version: str
    scores: Sequence[Score]
    documents: Sequence[Document] = ()


@dataclass(frozen=True)
class AssembledRun:
    """A whole run, ready for `ResultStore.write`."""

    run: RunRecord
    scores: tuple[ScoreRecord, ...]
    samples: tuple[SampleRecord, ...]


def normalise_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as stored: each a non-empty name without surrounding space, once, in the order given."""
    seen: dict[str, None] = {}
    for tag in [tags] if isinstance(tags, str) else tags:
        name = str(tag).strip()
        if not name:
            raise HarnessError("a tag must be a non-empty name (select it later with tag:NAME)")
        seen.setdefault(name, None)
    return tuple(seen)


def git_revision() -> str | None:
    """The checked-out commit of the working directory's repository, if there is one."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def record_provenance(
    *,
    settings: RunSettings,
    model: Mapping[str, Any] | None = None,
    libraries: Mapping[str, str | None] | None = None,
    cost: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
) -> Provenance:
    """Provenance of a run made here and now: versions, host and git revision are filled in."""
    return Provenance(
        versions=Versions(harness_version(), platform.python_version(), dict(libraries or {})),
        settings=settings,
        model=dict(model or {}),
        host=platform.node(),
        git_revision=git_revision(),
        tags=normalise_tags(tags),
        cost=dict(cost or {}),
        details=dict(details or {}),
    )


def _score_record(run_id: str, task: TaskResults, score: Score) -> ScoreRecord:
    return ScoreRecord(
        run_id=run_id,
        task=task.name,
        task_version=task.version,
        metric=score.metric,
        value=score.value,
        stderr=score.stderr,
        ci_low=score.ci_low,
        ci_high=score.ci_high,
        n=score.n,
        higher_is_better=score.higher_is_better,
        signature=score.signature,
    )


def _sample_record(run_id: str, task: TaskResults, document: Document) -> SampleRecord:
    logprobs = document.choice_logprobs
    return SampleRecord(
        run_id=run_id,
        task=task.name,
        doc_id=document.doc_id,
        prompt=document.prompt,
        target=document.target,
        prediction=document.prediction,
        choice_logprobs=tuple(float(value) for value in logprobs) if logprobs else None,
        statistics=dict(document.statistics),
        group=document.group,
        metadata=dict(document.metadata),
    )


def assemble_run(
    *,
    model: str,
    model_fingerprint: str,
    results: Sequence[TaskResults],
    provenance: Provenance,
    experiment: str | None = None,
    step: int | None = None,
    aggregates: Sequence[TaskResults] = (),
    run_id: str | None = None,
    created_at: datetime | None = None,
) -> AssembledRun:
    """A run of `results`' tasks; `aggregates` (task groups) add score rows but are not tasks of the run."""
    run_id = run_id or new_run_id()
    run = RunRecord(
        run_id=run_id,
        created_at=created_at or datetime.now(UTC),
        model=model,
        model_fingerprint=model_fingerprint,
        experiment=experiment,
        step=step,
        tasks=tuple(task.name for task in results),
        provenance=provenance,
        status="completed",
    )
    scores = tuple(_score_record(run_id, task, s) for task in (*results, *aggregates) for s in task.scores)
    samples = tuple(_sample_record(run_id, task, document) for task in results for document in task.documents)
    return AssembledRun(run, scores, samples)
