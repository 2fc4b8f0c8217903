"""A generated results store of any size, for the leaderboard's benchmark and tests.

Runs belong to a few experiments (one model each) evaluated at increasing steps, and get better
with training, so trends rise and rankings mean something. Every document carries the additive
statistics its metric needs, and every stored score is computed from them by `metrics.score`, as the
runner does, so comparisons and re-aggregations over these samples reproduce the stored numbers.
Tasks cycle through multiple choice (acc, acc_norm), generation (exact_match) and rolling
perplexity (word_perplexity); documents fall into groups whose difficulty differs a little.

With `group_tasks`, some runs also evaluate a task group as lm-eval's `group:` files are run: extra
multiple-choice tasks under `synth_group` (its first half also under the sub-group `synth_subgroup`
when there are four or more), one aggregate score row per group and metric from
`harness.tasks.groups.group_scores`, and `details.groups` in the run's provenance.

With `partial_runs`, that many more runs each score a single task, as `harness score` or `--tasks one`
leaves them: the leaderboard must rank them in a coverage tier of their own, never above full runs.
Multiple-choice documents store their option texts (`metadata.choices`), option 0 the gold one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from harness.metrics import get_metric, score
from harness.store import Document, ResultStore, RunSettings, TaskResults, assemble_run, record_provenance
from harness.store.statistics import encode_statistics
from harness.tasks import Task, TaskConfig
from harness.tasks.groups import AggregateSpec, TaskGroup, group_scores

__all__ = ["GROUP", "SUBGROUP", "generate_store", "group_task_names", "task_names"]

_KINDS = (
    ("multiple_choice", ("acc", "acc_norm")),
    ("generate_until", ("exact_match",)),
    ("loglikelihood_rolling", ("word_perplexity",)),
)
_START = datetime(2026, 1, 1, tzinfo=UTC)
GROUP = "synth_group"
SUBGROUP = "synth_subgroup"
_GROUP_METRICS = ("acc", "acc_norm")


def task_names(tasks: int) -> list[str]:
    return [f"synth_{_KINDS[index % len(_KINDS)][0]}_{index:02d}" for index in range(tasks)]


def group_task_names(group_tasks: int) -> list[str]:
    """The leaf tasks of `synth_group`."""
    return [f"synth_grouped_mc_{index:02d}" for index in range(group_tasks)]


def _task_group(group_tasks: int) -> TaskGroup:
    """`synth_group` over `group_tasks` leaves; with four or more, the first half form `synth_subgroup`."""
    aggregates = tuple(AggregateSpec(metric) for metric in _GROUP_METRICS)
    leaves = [
        Task(TaskConfig(task=name, output_type="multiple_choice", dataset_path="synthetic", data_files=None))
        for name in group_task_names(group_tasks)
    ]
    if group_tasks < 4:
        return TaskGroup(GROUP, tuple(leaves), aggregates)
    half = group_tasks // 2
    inner = TaskGroup(SUBGROUP, tuple(leaves[:half]), aggregates)
    return TaskGroup(GROUP, (inner, *leaves[half:]), aggregates)


def _task_documents(rng: np.random.Generator, task: str, samples: int, groups: Sequence[str]) -> dict:
    """Fixed per task, shared by every run: prompts, targets, groups, difficulties, lengths."""
    return {
        "prompt": [f"[{task}] Question {doc}: what follows item {doc * 7 % 101}?" for doc in range(samples)],
        "target": [f"answer {doc % 13}" for doc in range(samples)],
        "group": [groups[doc % len(groups)] for doc in range(samples)] if groups else [None] * samples,
        "difficulty": rng.normal(0.0, 1.0, samples)
        + np.array([0.25 * (doc % max(1, len(groups))) for doc in range(samples)]),
        "words": rng.integers(40, 160, samples).astype(np.float64),
        # Four options, the gold one first (as `_run_statistics` orders the log-probabilities).
        "choices": [[f"answer {(doc + shift) % 13}" for shift in (0, 3, 6, 9)] for doc in range(samples)],
    }


def _run_statistics(
    rng: np.random.Generator, kind: str, docs: dict, skill: float
) -> tuple[dict[str, np.ndarray], list[str | None], list[list[float] | None]]:
    """Per-document statistics by metric, predictions and choice log-probabilities for one run."""
    n = len(docs["prompt"])
    if kind == "loglikelihood_rolling":
        per_word = 2.5 - 0.4 * skill + 0.15 * docs["difficulty"] + rng.normal(0, 0.05, n)
        logprob = -np.clip(per_word, 0.2, None) * docs["words"]
        return {"word_perplexity": np.column_stack([logprob, docs["words"]])}, [None] * n, [None] * n
    probability = 1.0 / (1.0 + np.exp(-(skill - docs["difficulty"])))
    correct = (rng.random(n) < probability).astype(np.float64)
    ones = np.ones(n)
    if kind == "generate_until":
        predictions: list[str | None] = [
            target if hit else f"answer {(doc * 5 + 3) % 13}"
            for doc, (target, hit) in enumerate(zip(docs["target"], correct, strict=True))
        ]
        return {"exact_match": np.column_stack([correct, ones])}, predictions, [None] * n
    normalised = np.where(rng.random(n) < 0.85, correct, 1.0 - correct)
    logprobs: list[list[float] | None] = []
    for hit in correct:
        options = sorted(rng.uniform(-12.0, -2.0, 4).tolist(), reverse=True)
        # Option 0 is the gold one; a miss puts a wrong option on top.
        logprobs.append(options if hit else [options[1], options[0], *options[2:]])
    stats = {"acc": np.column_stack([correct, ones]), "acc_norm": np.column_stack([normalised, ones])}
    return stats, [None] * n, logprobs


def generate_store(
    root: str | Path,
    *,
    runs: int = 200,
    tasks: int = 20,
    samples: int = 1000,
    experiments: int = 4,
    groups: Sequence[str] = ("group_a", "group_b", "group_c"),
    seed: int = 0,
    bootstrap_resamples: int = 200,
    group_tasks: int = 0,
    group_every: int = 2,
    partial_runs: int = 0,
) -> list[str]:
    """Write `runs` runs of `tasks` tasks with `samples` documents each; returns their run ids.

    With `group_tasks`, every `group_every`-th run (the first one included) also evaluates the group
    `synth_group` of that many more tasks; the others do not. Without it, the store is the same as ever.
    Then `partial_runs` runs of one task each (the tasks in turn), ids `synth-partial-NNNN-...`.
    """
    store = ResultStore(root)
    rng = np.random.default_rng(seed)
    names = task_names(tasks)
    documents = {task: _task_documents(rng, task, samples, groups) for task in names}
    # The group draws from its own generator, so the other tasks' numbers do not depend on it.
    group_rng = np.random.default_rng(seed + 1)
    task_group = _task_group(group_tasks) if group_tasks else None
    grouped_names = group_task_names(group_tasks)
    group_documents = {task: _task_documents(group_rng, task, samples, groups) for task in grouped_names}
    environment = record_provenance(settings=RunSettings(seed=seed), model={"adapter": "synthetic"})
    run_ids = []
    for index in range(runs + partial_runs):
        partial = index >= runs
        experiment = index % experiments
        step = (index // experiments + 1) * 500
        skill = 0.3 * experiment - 0.5 + 0.35 * math.log1p(step / 500) + rng.normal(0, 0.05)
        if partial:
            skill += 1.5  # strong on its one task: ranked among full runs, it would come first
        run_id = f"synth-{index:04d}-e{experiment}-s{step}"
        results: list[TaskResults] = []
        grouped = not partial and task_group is not None and index % max(1, group_every) == 0
        evaluated = [
            (task, _KINDS[task_index % len(_KINDS)], documents[task], rng)
            for task_index, task in enumerate(names)
        ]
        if partial:
            run_id = f"synth-partial-{index - runs:04d}-e{experiment}-s{step}"
            evaluated = [evaluated[(index - runs) % len(evaluated)]]
        if grouped:
            evaluated += [(task, _KINDS[0], group_documents[task], group_rng) for task in grouped_names]
        for task, (kind, metric_names), docs, task_rng in evaluated:
            stats, predictions, logprobs = _run_statistics(task_rng, kind, docs, skill)
            metrics = [get_metric(name) for name in metric_names]
            scores = [
                score(metric, stats[metric.name], bootstrap_resamples=bootstrap_resamples, seed=0)
                for metric in metrics
            ]
            statistics = encode_statistics(metrics, [stats[metric.name] for metric in metrics], samples)
            docs_of_run = [
                Document(
                    doc_id=doc,
                    prompt=docs["prompt"][doc],
                    target=docs["target"][doc],
                    prediction=predictions[doc],
                    choice_logprobs=logprobs[doc],
                    statistics=statistics[doc],
                    group=docs["group"][doc],
                    metadata={"choices": docs["choices"][doc]} if kind == "multiple_choice" else {},
                )
                for doc in range(samples)
            ]
            results.append(TaskResults(task, "1.0", scores, docs_of_run))
        details: dict[str, object] = {"skill": round(skill, 4)}
        aggregates: list[TaskResults] = []
        if grouped and task_group is not None:
            by_task = {result.name: result.scores for result in results}
            for group in (task_group, *task_group.subgroups()):
                aggregates.append(TaskResults(group.name, "1.0", group_scores(group, by_task)))
            details["groups"] = {
                group.name: [leaf.name for leaf in group.leaf_tasks()]
                for group in (task_group, *task_group.subgroups())
            }
        provenance = replace(environment, details=details)
        store.write(
            assemble_run(
                model=f"synth-model-{experiment}",
                model_fingerprint=f"{experiment:064x}",
                results=results,
                aggregates=aggregates,
                provenance=provenance,
                experiment=f"experiment-{experiment}",
                step=step,
                run_id=run_id,
                created_at=_START + timedelta(hours=index),
            )
        )
        run_ids.append(run_id)
    return run_ids
