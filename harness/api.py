"""`harness.evaluate(...)`: the Python entry point `harness run` also uses.

Inside a training loop pass the in-memory model and its tokenizer; nothing is saved or reloaded.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness.adapters import load_adapter, wrap_model
from harness.adapters.base import ModelAdapter
from harness.cache import RequestCache
from harness.errors import HarnessError
from harness.fairness import task_fairness_scores
from harness.runner import RequestStats, TaskEvaluation, evaluate_tasks
from harness.store import ResultStore, RunRecord, SampleRecord, ScoreRecord, default_store_path, new_run_id
from harness.tasks import DEFAULT_SUITE
from harness.tasks.groups import group_scores
from harness.tasks.registry import TaskOverrides, resolve_selection
from harness.versions import harness_version

_STEP_PATTERN = re.compile(r"(?:checkpoint|global_step|step)[-_]?(\d+)$")


@dataclass(frozen=True)
class EvaluationReport:
    run_id: str
    model: str
    scores: tuple[ScoreRecord, ...]
    request_stats: RequestStats
    wall_seconds: float
    store: Path | None
    evaluations: tuple[TaskEvaluation, ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([score.__dict__ for score in self.scores])


def step_from_path(target: str) -> int | None:
    """`checkpoint-1000`, `step_1000` and `global_step1000` folder names carry their training step."""
    match = _STEP_PATTERN.search(Path(target.rstrip("/")).name)
    return int(match.group(1)) if match else None


def _git_revision() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def _resolve_model(
    model: str | ModelAdapter | Any | None, tokenizer: Any, model_args: Mapping[str, str]
) -> ModelAdapter:
    if model is None:
        from harness.default_model import DEFAULT_MODEL_NAME, default_model_dir

        return load_adapter(f"hf:{default_model_dir()}", {"name": DEFAULT_MODEL_NAME, **model_args})
    if isinstance(model, str):
        return load_adapter(model, model_args)
    if tokenizer is not None:
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


def _sample_records(run_id: str, evaluation: TaskEvaluation) -> list[SampleRecord]:
    records = []
    for index, (instance, outcome) in enumerate(zip(evaluation.instances, evaluation.outcomes, strict=True)):
        statistics: dict[str, float] = {}
        for metric in evaluation.task.metrics:
            values = evaluation.statistics[metric.name][index]
            names = metric.statistic_names
            for stat_name, value in zip(names, values, strict=True):
                statistics[metric.name if len(names) == 1 else f"{metric.name}/{stat_name}"] = float(value)
        records.append(
            SampleRecord(
                run_id=run_id,
                task=evaluation.task.name,
                doc_id=instance.doc_id,
                prompt=instance.prompt,
                target=instance.target,
                prediction=outcome.prediction,
                choice_logprobs=tuple(outcome.choice_logprobs) if outcome.choice_logprobs else None,
                statistics=statistics,
                group=instance.group,
                metadata={"references": list(instance.references)} if len(instance.references) > 1 else {},
            )
        )
    return records


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
) -> EvaluationReport:
    """Evaluate a model on tasks, store the run, and return its scores.

    `model` is `ADAPTER:TARGET` (`hf:./checkpoint-1000`, `mock:0`), a path, a ModelAdapter, or an
    in-memory transformers model together with `tokenizer=`. With no model, the embedded default model.
    """
    started = time.perf_counter()
    args = dict(model_args or {})
    task_specs = [tasks] if isinstance(tasks, str) else list(tasks or DEFAULT_SUITE)
    task_specs = [spec for item in task_specs for spec in item.split(",")]
    overrides = TaskOverrides(num_fewshot, dict(generation_kwargs or {}))
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
    cache = RequestCache(store_root / "cache.sqlite") if use_cache else None
    stats = RequestStats()
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
    run_id = new_run_id()
    task_rows = [
        (evaluation.task.name, evaluation.task.version, item)
        for evaluation in evaluations
        for item in (*evaluation.scores, *task_fairness_scores(evaluation, bootstrap_resamples, seed))
    ]
    scores_by_task = {evaluation.task.name: evaluation.scores for evaluation in evaluations}
    group_rows = [
        (group.name, group.version, item)
        for group in selection.groups
        for item in group_scores(group, scores_by_task)
    ]
    score_records = tuple(
        ScoreRecord(
            run_id=run_id,
            task=task_name,
            task_version=version,
            metric=item.metric,
            value=item.value,
            stderr=item.stderr,
            ci_low=item.ci_low,
            ci_high=item.ci_high,
            n=item.n,
            higher_is_better=item.higher_is_better,
            signature=item.signature,
        )
        for task_name, version, item in (*task_rows, *group_rows)
    )
    wall_seconds = time.perf_counter() - started
    if write:
        provenance = {
            **adapter.provenance(),
            "harness": harness_version(),
            "python": platform.python_version(),
            "seed": seed,
            "limit": limit,
            "bootstrap_resamples": bootstrap_resamples,
            "git_revision": _git_revision(),
            "host": platform.node(),
            "argv": sys.argv if os.environ.get("HARNESS_RECORD_ARGV", "1") == "1" else None,
            "task_versions": {e.task.name: e.task.version for e in evaluations},
            "task_overrides": {
                "num_fewshot": num_fewshot,
                "generation_kwargs": dict(generation_kwargs or {}),
            },
            "groups": {group.name: [task.name for task in group.leaf_tasks()] for group in selection.groups},
            "cost": {e.task.name: e.request_stats.cost(e.wall_seconds) for e in evaluations},
            "requests": {k: v for k, v in stats.__dict__.items() if k != "latencies"},
            "wall_seconds": wall_seconds,
        }
        run = RunRecord(
            run_id=run_id,
            created_at=datetime.now(UTC),
            model=adapter.name,
            model_fingerprint=adapter.fingerprint,
            experiment=experiment,
            step=step,
            tasks=tuple(e.task.name for e in evaluations),
            provenance=provenance,
            status="completed",
        )
        samples = [record for evaluation in evaluations for record in _sample_records(run_id, evaluation)]
        result_store.write_run(run, score_records, samples)
    return EvaluationReport(
        run_id=run_id,
        model=adapter.name,
        scores=score_records,
        request_stats=stats,
        wall_seconds=wall_seconds,
        store=store_root if write else None,
        evaluations=tuple(evaluations),
    )
