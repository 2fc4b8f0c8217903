"""The runner: tasks → requests → (cache) → adapter → results → per-sample statistics → scores.

Each task's requests are deduplicated and served in chunks; each chunk's results go into the request
cache as soon as they arrive, so a killed run resumes where it stopped and re-running an unchanged model
makes no model calls at all. Tasks run one after another so each records its own cost.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.adapters.base import ChatTemplateAdapter, ModelAdapter
from harness.cache import RequestCache
from harness.errors import PartialResultsError
from harness.metrics import SampleOutcome, Score, score_many, statistics_matrix
from harness.progress import RunProgress
from harness.requests import (
    GenerationRequest,
    LoglikelihoodRequest,
    Request,
    RequestKind,
    Result,
    RollingLoglikelihoodRequest,
)
from harness.tasks.scoring import filter_of
from harness.tasks.task import Task, TaskInstance

# Results are written to the cache after every chunk of this many requests (rounded to whole contexts).
CHUNK_REQUESTS = 64


@dataclass
class RequestStats:
    """How the run's requests were served: a re-run of an unchanged model shows model_requests == 0."""

    total: int = 0
    unique: int = 0
    cached: int = 0
    model_requests: int = 0
    tokens: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)
    # Seconds each model-served request waited for its batch (all requests of a batch finish together).
    latencies: list[float] = field(default_factory=list)

    def merge(self, other: RequestStats) -> None:
        self.total += other.total
        self.unique += other.unique
        self.cached += other.cached
        self.model_requests += other.model_requests
        self.tokens += other.tokens
        self.seconds += other.seconds
        for kind, count in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + count
        self.latencies.extend(other.latencies)

    def cost(self, wall_seconds: float) -> dict[str, float | int | None]:
        """What serving these requests cost: recorded with the run, beside the scores."""
        latencies = np.array(self.latencies) if self.latencies else None
        return {
            "wall_seconds": wall_seconds,
            "model_seconds": self.seconds,
            "tokens": self.tokens,
            "tokens_per_second": self.tokens / self.seconds if self.seconds > 0 else None,
            "requests": self.unique,
            "cached_requests": self.cached,
            "model_requests": self.model_requests,
            "latency_p50": float(np.percentile(latencies, 50)) if latencies is not None else None,
            "latency_p90": float(np.percentile(latencies, 90)) if latencies is not None else None,
            "latency_p99": float(np.percentile(latencies, 99)) if latencies is not None else None,
        }


@dataclass(frozen=True)
class TaskEvaluation:
    """Everything one task produced in one run."""

    task: Task
    instances: tuple[TaskInstance, ...]
    outcomes: tuple[SampleOutcome, ...]
    statistics: dict[str, np.ndarray]
    scores: tuple[Score, ...]
    request_stats: RequestStats
    wall_seconds: float


def _length_key(request: Request) -> tuple[int, str]:
    """Longest first, and a context's requests side by side so the adapter can share the context."""
    if isinstance(request, LoglikelihoodRequest):
        return (-len(request.context), request.context)
    if isinstance(request, RollingLoglikelihoodRequest):
        return (-len(request.text), "")
    prompt = request.prompt if isinstance(request.prompt, str) else repr(request.prompt)
    return (-len(prompt), repr(request.settings))


def _chunks(requests: Sequence[Request], size: int) -> list[list[Request]]:
    chunks: list[list[Request]] = []
    current: list[Request] = []
    for request in requests:
        boundary = (
            not current
            or not isinstance(request, LoglikelihoodRequest)
            or not isinstance(current[-1], LoglikelihoodRequest)
            or request.context != current[-1].context
        )
        if len(current) >= size and boundary:
            chunks.append(current)
            current = []
        current.append(request)
    if current:
        chunks.append(current)
    return chunks


def _call_adapter(
    adapter: ModelAdapter, kind: RequestKind, chunk: list[Request], progress: Any
) -> list[Result]:
    if kind == "loglikelihood":
        return list(
            adapter.loglikelihood([r for r in chunk if isinstance(r, LoglikelihoodRequest)], progress)
        )
    if kind == "loglikelihood_rolling":
        rolling = [r for r in chunk if isinstance(r, RollingLoglikelihoodRequest)]
        return list(adapter.loglikelihood_rolling(rolling, progress))
    return list(adapter.generate([r for r in chunk if isinstance(r, GenerationRequest)], progress))


def serve_requests(
    adapter: ModelAdapter,
    requests: Sequence[Request],
    cache: RequestCache | None,
    *,
    show_progress: bool = True,
    stats: RequestStats | None = None,
    description: str = "requests",
    run_progress: RunProgress | None = None,
) -> dict[Request, Result]:
    """Results for every distinct request, from the cache where possible.

    Requests are frozen values, so equal requests are one dictionary key; the content hash that keys the
    cache is computed only inside the cache.
    """
    stats = stats if stats is not None else RequestStats()
    unique = list(dict.fromkeys(requests))
    stats.total += len(requests)
    stats.unique += len(unique)
    results: dict[Request, Result] = {}
    fingerprint = adapter.fingerprint
    if cache is not None and unique:
        for request, cached in zip(unique, cache.lookup(fingerprint, unique), strict=True):
            if cached is not None:
                results[request] = cached
    stats.cached += len(results)
    missing = [request for request in unique if request not in results]
    stats.model_requests += len(missing)
    # The run's line (task k/N, requests left, ETA) rides beside this task's bar; alone, a run of one.
    line = run_progress or RunProgress([(description, len(unique))], enabled=show_progress, stream=sys.stderr)
    line.served_from_cache(len(results))
    if not missing:
        return results
    started = time.perf_counter()
    line.start_task(description, len(missing))
    tokens = [0]
    last_report = [started]

    def progress(done: int, token_count: int) -> None:
        now = time.perf_counter()
        stats.latencies.extend([now - last_report[0]] * done)
        last_report[0] = now
        tokens[0] += token_count
        line.advance(done, f"{tokens[0] / max(now - started, 1e-9):,.0f} tok/s")

    try:
        kinds: list[RequestKind] = ["loglikelihood", "loglikelihood_rolling", "generate_until"]
        for kind in kinds:
            of_kind = sorted((r for r in missing if r.kind == kind), key=_length_key)
            stats.by_kind[kind] = stats.by_kind.get(kind, 0) + len(of_kind)
            for chunk in _chunks(of_kind, CHUNK_REQUESTS):
                try:
                    chunk_results = _call_adapter(adapter, kind, chunk, progress)
                except PartialResultsError as error:
                    # Keep what the adapter finished before failing: a re-run asks only for the rest.
                    if cache is not None and error.completed:
                        done = sorted(error.completed)
                        cache.store(fingerprint, [chunk[i] for i in done], [error.completed[i] for i in done])
                    raise
                if cache is not None:
                    cache.store(fingerprint, chunk, chunk_results)
                for request, result in zip(chunk, chunk_results, strict=True):
                    results[request] = result
    finally:
        if run_progress is None:
            line.close()
        else:
            line.end_task()
    stats.tokens += tokens[0]
    stats.seconds += time.perf_counter() - started
    return results


def statistics_for(task: Task, outcomes: Mapping[str, Sequence[SampleOutcome]]) -> dict[str, np.ndarray]:
    """Each metric's per-document statistics, from the outcomes of the filter pipeline it is scored on."""
    return {metric.name: statistics_matrix(metric, outcomes[filter_of(metric)]) for metric in task.metrics}


def evaluate_tasks(
    adapter: ModelAdapter,
    tasks: Sequence[Task],
    *,
    limit: int | None = None,
    cache: RequestCache | None = None,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    show_progress: bool = True,
    stats: RequestStats | None = None,
) -> list[TaskEvaluation]:
    """Evaluate tasks one after another, so each task's cost (time, tokens, latency) is its own."""
    built: list[tuple[Task, list[TaskInstance]]] = []
    chat = adapter.apply_chat_template if isinstance(adapter, ChatTemplateAdapter) else None
    for task in tasks:
        task.metrics  # noqa: B018 - resolve metric names before any model call, so typos fail fast
        built.append((task, task.build_instances(limit, chat)))
    evaluations = []
    sizes = [(task.name, len({r for i in instances for r in i.requests})) for task, instances in built]
    run_progress = RunProgress(sizes, enabled=show_progress, stream=sys.stderr)
    for task, instances in built:
        started = time.perf_counter()
        task_stats = RequestStats()
        requests = [request for instance in instances for request in instance.requests]
        results = serve_requests(
            adapter,
            requests,
            cache,
            show_progress=show_progress,
            stats=task_stats,
            description=task.name,
            run_progress=run_progress,
        )
        answers = [[results[request] for request in instance.requests] for instance in instances]
        filtered = task.filtered_outcomes(instances, answers)
        outcomes = filtered[task.filters[0].name]
        statistics = statistics_for(task, filtered)
        # One set of bootstrap draws serves every metric of the task (and keeps them paired).
        scores = tuple(
            score_many(
                task.metrics,
                [statistics[metric.name] for metric in task.metrics],
                bootstrap_resamples=bootstrap_resamples,
                seed=seed,
            )
        )
        wall = time.perf_counter() - started
        evaluations.append(
            TaskEvaluation(task, tuple(instances), outcomes, statistics, scores, task_stats, wall)
        )
        if stats is not None:
            stats.merge(task_stats)
    run_progress.close()  # its ticker also ends by itself between tasks, so a failed run leaves none
    return evaluations
