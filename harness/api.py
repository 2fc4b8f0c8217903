"""`harness.evaluate(...)`: the Python entry point `harness run` also uses.

Inside a training loop pass the in-memory model and its tokenizer; nothing is saved or reloaded.
"""

from __future__ import annotations

import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.adapters import load_adapter, wrap_model
from harness.adapters.base import ModelAdapter
from harness.adapters.sharded import is_sharded_model
from harness.distributed import (
    DistributedAdapter,
    RankZeroCache,
    current_world,
    on_rank_zero,
    refuse_fsdp1,
)
from harness.errors import HarnessError, HarnessWarning
from harness.fairness import task_fairness_scores
from harness.metrics.outcome_checks import outcome_warnings
from harness.runner import RequestStats, TaskEvaluation, evaluate_tasks
from harness.shards import Shard, check_caches, open_run_cache, parse_shard, serve_shard
from harness.store import (
    Document,
    Provenance,
    ResultStore,
    RunSettings,
    ScoreRecord,
    TaskResults,
    assemble_run,
    default_store_path,
    normalise_tags,
    record_provenance,
    request_cache_path,
)
from harness.store.statistics import encode_statistics
from harness.tasks import DEFAULT_SUITE
from harness.tasks.groups import group_scores
from harness.tasks.registry import TaskOverrides, resolve_selection

_STEP_PATTERN = re.compile(r"(?:checkpoint|global_step|step)[-_]?(\d+)$")


@dataclass(frozen=True)
class EvaluationReport:
    run_id: str
    model: str
    scores: tuple[ScoreRecord, ...]
    request_stats: RequestStats
    wall_seconds: float
    store: Path | str | None  # a local folder; an `s3://` URI stays a string (Path folds its `//`)
    evaluations: tuple[TaskEvaluation, ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([score.__dict__ for score in self.scores])


def step_from_path(target: str) -> int | None:
    """`checkpoint-1000`, `step_1000` and `global_step1000` folder names carry their training step."""
    match = _STEP_PATTERN.search(Path(target.rstrip("/")).name)
    return int(match.group(1)) if match else None


def _resolve_model(
    model: str | ModelAdapter | Any | None, tokenizer: Any, model_args: Mapping[str, str]
) -> ModelAdapter:
    if model is None:
        from harness.default_model import DEFAULT_MODEL_NAME, default_model_dir

        return load_adapter(f"hf:{default_model_dir()}", {"name": DEFAULT_MODEL_NAME, **model_args})
    if isinstance(model, str):
        return load_adapter(model, model_args)
    if tokenizer is not None:
        refuse_fsdp1(model)  # before any forward call: its generation would hang, not fail
        from harness.adapters.hf import parse_batch_size

        batch_size = parse_batch_size(str(model_args.get("batch_size", "auto")))
        return wrap_model(
            model, tokenizer, name=str(model_args.get("name", "in-memory")), batch_size=batch_size
        )
    if isinstance(model, ModelAdapter):
        return model
    raise HarnessError(
        "model must be an ADAPTER:TARGET string, a model adapter, or a model with its tokenizer"
    )


def _task_results(evaluation: TaskEvaluation, extra_scores: Sequence[Any]) -> TaskResults:
    """One evaluated task as the store takes it: score rows (its own, then fairness rows) and documents."""
    metrics = evaluation.task.metrics
    matrices = [evaluation.statistics[metric.name] for metric in metrics]
    statistics = encode_statistics(metrics, matrices, len(evaluation.instances))
    documents = [
        Document(
            doc_id=instance.doc_id,
            prompt=instance.prompt,
            target=instance.target,
            prediction=outcome.prediction,
            choice_logprobs=outcome.choice_logprobs,
            statistics=stats,
            group=instance.group,
            # A multiple-choice document keeps its option texts, so a browser can name the chosen option.
            metadata={
                **({"references": list(instance.references)} if len(instance.references) > 1 else {}),
                **({"choices": list(instance.choices)} if instance.choices else {}),
            },
        )
        for instance, outcome, stats in zip(
            evaluation.instances, evaluation.outcomes, statistics, strict=True
        )
    ]
    task = evaluation.task
    return TaskResults(task.name, task.version, (*evaluation.scores, *extra_scores), documents)


def evaluate(
    model: str | ModelAdapter | Any | None = None,
    tasks: str | Iterable[str] | None = None,
    *,
    tokenizer: Any = None,
    model_args: Mapping[str, str] | None = None,
    include_paths: Sequence[str | Path] = (),
    store: str | Path | None = None,
    experiment: str | None = None,
    step: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    bootstrap_resamples: int = 1000,
    write: bool = True,
    use_cache: bool = True,
    show_progress: bool = False,
    num_fewshot: int | None = None,
    generation_kwargs: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    system_instruction: str | None = None,
    apply_chat_template: bool = False,
    fewshot_as_multiturn: bool = False,
    shard: Shard | str | None = None,
    caches: Sequence[str | Path] = (),
) -> EvaluationReport:
    """Evaluate a model on tasks, store the run, and return its scores.

    `model` is `ADAPTER:TARGET` (`hf:./checkpoint-1000`, `mock:0`), a path, a ModelAdapter, or an
    in-memory transformers model together with `tokenizer=`. With no model, the embedded default model.
    `tags` are stored with the run; `harness gate --baseline tag:NAME` selects the newest run tagged NAME.
    `caches` replace the store's request cache (answers looked up in all, new ones written to the first).
    `shard` (`K/N` or `auto`) only answers shard K's requests into its cache: no scores, no run stored.
    Under torch.distributed every rank serves its share, all ranks get the scores, rank 0 stores the run.
    """
    started = time.perf_counter()
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    world = current_world()
    if world is not None and shard is not None:
        raise HarnessError("--shard cannot be used under torch.distributed: each rank serves a share")
    # One run, one store writer and one progress bar, whatever the number of ranks; a shard stores no run.
    write = write and shard is None and (world is None or world.is_main)
    show_progress = show_progress and (world is None or world.is_main)
    run_tags = normalise_tags(tags)
    args = dict(model_args or {})
    task_specs = [tasks] if isinstance(tasks, str) else list(tasks or DEFAULT_SUITE)
    task_specs = [spec for item in task_specs for spec in item.split(",")]
    overrides = TaskOverrides(
        num_fewshot,
        dict(generation_kwargs or {}),
        system_instruction,
        apply_chat_template,
        fewshot_as_multiturn,
    )
    selection = resolve_selection(task_specs, [Path(p) for p in include_paths], overrides)
    if limit is not None and limit <= 0:
        raise HarnessError("--limit must be a positive number of documents")
    if bootstrap_resamples < 0:
        raise HarnessError("--bootstrap-resamples must be 0 or more")
    if not 0 <= seed < 2**32:
        raise HarnessError("--seed must be a whole number from 0 to 4294967295")
    store_root = Path(store) if store is not None else default_store_path()
    result_store = ResultStore(store_root)
    if write:
        result_store.runs()  # a store written by a newer version, or a path that is no store, fails here
    adapter = _resolve_model(model, tokenizer, args)
    if step is None and isinstance(model, str):
        step = step_from_path(model.partition(":")[2] or model)
    if world is not None:
        # A model sharded across the ranks (FSDP2) needs every rank in every forward call; it may come
        # in memory or inside an adapter that has already loaded it.
        sharded = is_sharded_model(model) or is_sharded_model(getattr(adapter, "loaded_model", None))
        adapter = DistributedAdapter(adapter, world, replicated=sharded)
    cache = open_run_cache(request_cache_path(store_root), caches, use_cache=use_cache, shard=shard)
    if cache is not None and (shard is not None or len(caches) > 1):
        checked, merging = cache, shard is None
        on_rank_zero(world, lambda: check_caches(checked, adapter.fingerprint, adapter.name, merging=merging))
    if world is not None and cache is not None:
        cache = RankZeroCache(cache, world)
    stats = RequestStats()
    if shard is not None and cache is not None:
        # A shard has no scores of its own: its answers wait in its cache for the merge run.
        try:
            serve_shard(
                adapter,
                list(selection.tasks),
                shard,
                cache,
                limit=limit,
                show_progress=show_progress,
                stats=stats,
            )
        finally:
            cache.close()
        wall = time.perf_counter() - started
        return EvaluationReport("", adapter.name, (), stats, wall, None, ())
    try:
        evaluations = evaluate_tasks(
            adapter,
            list(selection.tasks),
            limit=limit,
            cache=cache,
            bootstrap_resamples=bootstrap_resamples,
            seed=seed,
            show_progress=show_progress,
            stats=stats,
        )
    finally:
        if cache is not None:
            cache.close()
    # Scores that mean less than they seem (empty generations, tied choices, few documents): a line each.
    found_warnings = [found for e in evaluations for found in outcome_warnings(e.task.name, e.outcomes)]
    for found in found_warnings if world is None or world.is_main else ():  # once, not once per rank
        warnings.warn(found.message, HarnessWarning, stacklevel=2)
    results = [
        _task_results(evaluation, task_fairness_scores(evaluation, bootstrap_resamples, seed))
        for evaluation in evaluations
    ]
    scores_by_task = {evaluation.task.name: evaluation.scores for evaluation in evaluations}
    groups = [
        TaskResults(group.name, group.version, group_scores(group, scores_by_task))
        for group in selection.groups
    ]
    wall_seconds = time.perf_counter() - started
    provenance = Provenance()
    if write:
        provenance = record_provenance(
            settings=RunSettings(seed=seed, limit=limit, bootstrap_resamples=bootstrap_resamples),
            model=adapter.provenance(),
            cost={e.task.name: e.request_stats.cost(e.wall_seconds) for e in evaluations},
            tags=run_tags,
            details={
                "argv": sys.argv if os.environ.get("HARNESS_RECORD_ARGV", "1") == "1" else None,
                "task_versions": {e.task.name: e.task.version for e in evaluations},
                "task_overrides": {
                    "num_fewshot": num_fewshot,
                    "generation_kwargs": dict(generation_kwargs or {}),
                    "system_instruction": system_instruction,
                    "apply_chat_template": apply_chat_template,
                    "fewshot_as_multiturn": fewshot_as_multiturn,
                },
                "groups": {
                    group.name: [task.name for task in group.leaf_tasks()] for group in selection.groups
                },
                "requests": {k: v for k, v in stats.__dict__.items() if k != "latencies"},
                "wall_seconds": wall_seconds,
                "warnings": [found.to_dict() for found in found_warnings],
            },
        )
    assembled = assemble_run(
        model=adapter.name,
        model_fingerprint=adapter.fingerprint,
        results=results,
        aggregates=groups,
        provenance=provenance,
        experiment=experiment,
        step=step,
    )
    if write:
        result_store.write(assembled)
    return EvaluationReport(
        run_id=assembled.run.run_id,
        model=adapter.name,
        scores=assembled.scores,
        request_stats=stats,
        wall_seconds=wall_seconds,
        store=result_store.reported_root if write else None,
        evaluations=tuple(evaluations),
    )
