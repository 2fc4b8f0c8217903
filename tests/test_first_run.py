"""`harness run` with no arguments: a first look in about two minutes that still shows every metric family.

The time itself is measured by benchmarks/bench_first_run.py on the real default model; here the suite's
shape is held: what it shows, that its documents are the full tasks' own, and how much it asks of a model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import harness
from harness.errors import HarnessWarning
from harness.tasks import DEFAULT_SUITE, resolve_tasks
from harness.tasks.suites import BUILTIN_DIR, builtin_task_names, suite_tasks

# The full task each first-look task takes its prompt and documents from.
FULL_TASK = {
    "first_look_prose_ppl": "harness_prose_ppl",
    "first_look_reading_mc": "harness_reading_mc",
    "first_look_tone": "harness_tone",
    "first_look_facts_qa": "harness_facts_qa",
    "first_look_stereotype_pairs": "fairness_stereotype_pairs",
}
# What a model answers for the default suite. About 150 requests take ~1 minute of CPU time for the
# default model on two cores; raising this needs a new measurement with benchmarks/bench_first_run.py.
MAX_REQUESTS = 160


@pytest.fixture(scope="module")
def default_run() -> harness.EvaluationReport:
    with warnings.catch_warnings():
        warnings.simplefilter("error", HarnessWarning)  # e.g. a task under 10 documents would fail here
        return harness.evaluate("mock:0", write=False, use_cache=False, bootstrap_resamples=50)


def test_the_default_suite_is_the_first_look() -> None:
    assert tuple(FULL_TASK) == DEFAULT_SUITE == suite_tasks("first_look") == suite_tasks("default")


def test_every_metric_family_is_shown(default_run: harness.EvaluationReport) -> None:
    metrics = {(score.task, score.metric) for score in default_run.scores}
    assert ("first_look_prose_ppl", "word_perplexity") in metrics  # perplexity
    assert ("first_look_reading_mc", "acc") in metrics  # multiple-choice accuracy
    assert ("first_look_tone", "f1_macro") in metrics  # classification F1
    for metric in ("exact_match", "bleu", "rougeL"):  # generation
        assert ("first_look_facts_qa", metric) in metrics
    fairness = {metric for task, metric in metrics if task == "first_look_stereotype_pairs"}
    assert "fairness/stereotype_preference" in fairness and "fairness/acc/difference" in fairness


def test_the_first_look_stays_small(default_run: harness.EvaluationReport) -> None:
    assert default_run.request_stats.unique <= MAX_REQUESTS
    assert all(len(evaluation.instances) >= 10 for evaluation in default_run.evaluations)


@pytest.mark.parametrize("name", list(FULL_TASK))
def test_first_look_documents_are_the_full_tasks_own(name: str) -> None:
    (small,) = resolve_tasks([name])
    (full,) = resolve_tasks([FULL_TASK[name]])
    assert small.config.doc_to_text == full.config.doc_to_text
    assert small.config.output_type == full.config.output_type
    small_docs = [json.dumps(doc, sort_keys=True) for doc in small.documents]
    full_docs = {json.dumps(doc, sort_keys=True) for doc in full.documents}
    assert len(small_docs) == len(set(small_docs)) >= 10
    assert set(small_docs) <= full_docs


def test_all_is_every_full_builtin_task() -> None:
    full = suite_tasks("all")
    assert full is not None
    assert set(FULL_TASK.values()) <= set(full)
    assert not any(name.startswith("first_look_") for name in full)
    on_disk = {path.stem for path in BUILTIN_DIR.glob("*.yaml") if not path.stem.startswith("first_look_")}
    assert set(full) == on_disk == {n for n in builtin_task_names() if not n.startswith("first_look_")}
    assert [task.name for task in resolve_tasks(["all"])] == list(full)


def test_a_task_named_like_a_suite_wins(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(
        (BUILTIN_DIR / "harness_tone.yaml")
        .read_text(encoding="utf-8")
        .replace("task: harness_tone", "task: all")
        .replace("data/tone.jsonl", str(BUILTIN_DIR / "data" / "tone.jsonl")),
        encoding="utf-8",
    )
    assert [task.name for task in resolve_tasks(["all"], [tmp_path])] == ["all"]
