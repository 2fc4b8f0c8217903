"""Shards: a deterministic share of each task's requests, answered into a request cache of its own.

`harness run --shard K/N --cache PATH` serves shard K of N of every task's deduplicated requests and
stores the answers in PATH; it scores nothing and writes no run to the store, because a shard alone has
no scores. `harness run --cache A --cache B ...` then assembles the run from the shards' answers without
calling the model. The split is computed from the requests alone (never from what a cache holds), so every
shard, on any node and at any time, agrees on who serves what, and a shard killed mid-way re-runs only
the requests of its share that its own cache lacks. Shards are balanced by character length, a stand-in
for token count that needs no tokenizer, and a multiple-choice context's options stay together so the
adapter still runs each context once.

K/N may also come from the environment (`--shard auto`): Slurm job arrays, Kubernetes indexed Jobs (with
HARNESS_SHARD_COUNT) or RANK/WORLD_SIZE, so an array job needs no wrapper script.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.adapters.base import ChatTemplateAdapter, ModelAdapter
from harness.cache import RequestCache
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    LoglikelihoodRequest,
    Request,
    RollingLoglikelihoodRequest,
)
from harness.runner import RequestStats, serve_requests
from harness.tasks.task import Task

__all__ = [
    "SHARD_COUNT_ENV_VAR",
    "Shard",
    "check_caches",
    "open_run_cache",
    "parse_shard",
    "serve_shard",
    "shard_from_environment",
    "split_requests",
]

# A Kubernetes indexed Job gives each pod its index but not the number of completions.
SHARD_COUNT_ENV_VAR = "HARNESS_SHARD_COUNT"
# Characters a generated token stands for, when weighing generation against scoring work.
_CHARS_PER_GENERATED_TOKEN = 4


@dataclass(frozen=True)
class Shard:
    """Shard `index` (from 0) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise HarnessError(
                f"--shard must be K/N with N >= 1 and 0 <= K < N, got '{self.index}/{self.count}'"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _whole_number(text: str, what: str) -> int:
    if not text.strip().isdigit():
        raise HarnessError(f"{what} must be a whole number, got '{text}'")
    return int(text)


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """`K/N`, or `auto` for the shard the environment names (see `shard_from_environment`)."""
    if text.strip().lower() == "auto":
        found = shard_from_environment(os.environ if environ is None else environ)
        if found is None:
            raise HarnessError(
                "--shard auto found no shard in the environment (SLURM_ARRAY_TASK_ID, "
                f"JOB_COMPLETION_INDEX with {SHARD_COUNT_ENV_VAR}, or RANK with WORLD_SIZE)"
            )
        return found
    index, separator, count = text.partition("/")
    if not separator:
        raise HarnessError(f"--shard must be K/N (for example 0/4) or auto, got '{text}'")
    return Shard(_whole_number(index, "--shard K"), _whole_number(count, "--shard N"))


def shard_from_environment(environ: Mapping[str, str]) -> Shard | None:
    """The shard a scheduler assigned: a Slurm array task, a Kubernetes indexed Job's pod, or a rank."""
    if "SLURM_ARRAY_TASK_ID" in environ:
        task_id = _whole_number(environ["SLURM_ARRAY_TASK_ID"], "SLURM_ARRAY_TASK_ID")
        minimum = _whole_number(environ.get("SLURM_ARRAY_TASK_MIN", "0"), "SLURM_ARRAY_TASK_MIN")
        if "SLURM_ARRAY_TASK_COUNT" in environ:
            count = _whole_number(environ["SLURM_ARRAY_TASK_COUNT"], "SLURM_ARRAY_TASK_COUNT")
        elif "SLURM_ARRAY_TASK_MAX" in environ:
            count = _whole_number(environ["SLURM_ARRAY_TASK_MAX"], "SLURM_ARRAY_TASK_MAX") - minimum + 1
        else:
            raise HarnessError("SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor _MAX")
        return Shard(task_id - minimum, count)
    if "JOB_COMPLETION_INDEX" in environ:
        if SHARD_COUNT_ENV_VAR not in environ:
            raise HarnessError(
                f"JOB_COMPLETION_INDEX is set but {SHARD_COUNT_ENV_VAR} is not (the Job's completions)"
            )
        return Shard(
            _whole_number(environ["JOB_COMPLETION_INDEX"], "JOB_COMPLETION_INDEX"),
            _whole_number(environ[SHARD_COUNT_ENV_VAR], SHARD_COUNT_ENV_VAR),
        )
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return Shard(
            _whole_number(environ["RANK"], "RANK"), _whole_number(environ["WORLD_SIZE"], "WORLD_SIZE")
        )
    return None


def _weight(request: Request) -> int:
    if isinstance(request, LoglikelihoodRequest):
        return len(request.continuation)
    if isinstance(request, RollingLoglikelihoodRequest):
        return len(request.text)
    prompt = request.prompt if isinstance(request.prompt, str) else repr(request.prompt)
    return len(prompt) + _CHARS_PER_GENERATED_TOKEN * request.settings.max_tokens


def _units(requests: Sequence[Request]) -> list[tuple[int, str, list[Request]]]:
    """Requests grouped into units that must stay together, each with its weight and a stable name."""
    grouped: dict[tuple[str, str], list[Request]] = {}
    for request in requests:
        if isinstance(request, LoglikelihoodRequest):
            # The options of one context: the adapter runs the context once for all of them.
            key = ("loglikelihood", request.context)
        elif isinstance(request, RollingLoglikelihoodRequest):
            key = ("rolling", request.text)
        else:
            assert isinstance(request, GenerationRequest)
            key = ("generate", repr(request))
        grouped.setdefault(key, []).append(request)
    units = []
    for (kind, text), members in grouped.items():
        weight = sum(_weight(member) for member in members)
        if kind == "loglikelihood":
            weight += len(text)  # the shared context, counted once
        units.append((weight, hashlib.sha256(f"{kind}\x1f{text}".encode()).hexdigest(), members))
    return units


def split_requests(requests: Sequence[Request], count: int) -> list[list[Request]]:
    """`count` shares of the distinct requests, balanced by length; the same requests give the same split
    in any order, in any process."""
    if count < 1:
        raise ValueError("count must be at least 1")
    units = _units(list(dict.fromkeys(requests)))
    # Heaviest first, each to the lightest share so far (ties to the lowest share): within 1 unit of even.
    units.sort(key=lambda unit: (-unit[0], unit[1]))
    loads = [0] * count
    shares: list[list[Request]] = [[] for _ in range(count)]
    for weight, _, members in units:
        target = min(range(count), key=lambda share: (loads[share], share))
        loads[target] += weight
        shares[target].extend(members)
    return shares


def serve_shard(
    adapter: ModelAdapter,
    tasks: Sequence[Task],
    shard: Shard,
    cache: RequestCache,
    *,
    limit: int | None = None,
    show_progress: bool = True,
    stats: RequestStats | None = None,
) -> RequestStats:
    """Answer this shard's share of every task's requests into `cache`; what it already holds is skipped."""
    stats = stats if stats is not None else RequestStats()
    chat = adapter.apply_chat_template if isinstance(adapter, ChatTemplateAdapter) else None
    built = []
    for task in tasks:
        task.metrics  # noqa: B018 - resolve metric names before any model call, so typos fail fast
        built.append((task, task.build_instances(limit, chat)))
    cache.label(adapter.fingerprint, adapter.name)
    for task, instances in built:
        requests = [request for instance in instances for request in instance.requests]
        share = split_requests(requests, shard.count)[shard.index]
        serve_requests(
            adapter,
            share,
            cache,
            show_progress=show_progress,
            stats=stats,
            description=f"{task.name} [shard {shard}]",
        )
    return stats


def check_caches(cache: RequestCache, fingerprint: str, model: str, *, merging: bool) -> None:
    """Refuse missing caches and caches whose answers belong to other models: a merge of one model's shards,
    or a shard's own cache, must hold this model's answers.

    A merge (`merging`) reads caches that must all exist and hold answers: an empty one is a shard that
    failed before its first answer, and merging it would quietly run that shard's whole share on the model.
    The first cache of a shard run may be new or empty (a shard that has not started)."""
    for position, source in enumerate(cache.sources()):
        if (merging or position > 0) and not source.path.is_file():
            raise HarnessError(f"no request cache at {source.path}")
        if merging and source.count() == 0:
            raise HarnessError(f"cache {source.path} holds no answers: re-run its shard, or leave it out")
    holdings = [(source.path, source.models()) for source in cache.sources()]
    filled = [(path, models) for path, models in holdings if models]
    for position, (path, models) in enumerate(filled):
        for other_path, other_models in filled[position + 1 :]:
            if not set(models) & set(other_models):
                raise HarnessError(
                    f"caches {path} and {other_path} hold answers of different models "
                    f"({_describe(models)} vs {_describe(other_models)}); merge the shards of one model"
                )
    for path, models in filled:
        if fingerprint not in models:
            raise HarnessError(
                f"cache {path} holds answers of another model ({_describe(models)}), "
                f"not of {model} ({fingerprint[:12]})"
            )


def _describe(models: Mapping[str, str | None], shown: int = 3) -> str:
    named = [f"{name or 'unnamed'} ({fingerprint[:12]})" for fingerprint, name in models.items()]
    more = f" and {len(named) - shown} more" if len(named) > shown else ""
    return ", ".join(named[:shown]) + more


def open_run_cache(
    default: Path, caches: Sequence[str | Path], *, use_cache: bool, shard: Shard | None
) -> RequestCache | None:
    """The request cache of one run: the store's (`default`), or the `--cache` files given, answers looked
    up in all of them and new ones written to the first. No file is touched yet (see `check_caches`)."""
    if caches and not use_cache:
        raise HarnessError("--cache and --no-cache contradict each other")
    if shard is not None and not caches:
        raise HarnessError("--shard needs --cache PATH: each shard answers into a cache file of its own")
    if not use_cache:
        return None
    if not caches:
        return RequestCache(default)
    return RequestCache(caches[0], also_read=caches[1:])
