"""The same model and the same YAML files give the same numbers in harness and in lm-evaluation-harness.

The tiny test model has a 128-token context, so this also covers lm-eval's rolling perplexity windows and
its left truncation of long multiple-choice contexts and generation prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import harness
from benchmarks.lm_eval_tasks import lm_eval_copy
from harness.tasks.registry import BUILTIN_DIR

lm_eval = pytest.importorskip("lm_eval")
BUILTIN = ["harness_prose_ppl", "harness_reading_mc", "harness_tone", "harness_facts_qa"]
LIMIT = 10


@pytest.fixture(scope="module")
def side_by_side(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    yaml_dir = tmp_path_factory.mktemp("lm_eval_yaml")
    paths = [lm_eval_copy(BUILTIN_DIR / f"{name}.yaml", yaml_dir) for name in BUILTIN]
    ours = harness.evaluate(
        f"hf:{tiny_model_dir}",
        [str(path) for path in paths],
        model_args={"batch_size": "4"},
        limit=LIMIT,
        write=False,
        use_cache=False,
    )
    model = HFLM(pretrained=str(tiny_model_dir), batch_size=4, dtype="float32", device="cpu")
    theirs = simple_evaluate(
        model=model,
        tasks=BUILTIN,
        task_manager=TaskManager(include_path=str(yaml_dir), include_defaults=False),
        limit=LIMIT,
        bootstrap_iters=0,
        log_samples=True,
    )
    assert theirs is not None
    return {"ours": ours, "theirs": theirs}


def test_every_metric_equals_lm_eval(side_by_side: dict[str, Any]) -> None:
    ours: harness.EvaluationReport = side_by_side["ours"]
    theirs = side_by_side["theirs"]["results"]
    compared = 0
    for score in ours.scores:
        if score.metric == "token_perplexity":
            continue  # harness's own metric; lm-eval has none to compare with
        reference = theirs[score.task][f"{score.metric},none"]
        assert score.value == pytest.approx(reference, rel=1e-4, abs=1e-12), (score.task, score.metric)
        compared += 1
    assert compared == 8


def test_generations_equal_lm_eval(side_by_side: dict[str, Any]) -> None:
    ours: harness.EvaluationReport = side_by_side["ours"]
    (facts,) = [e for e in ours.evaluations if e.task.name == "harness_facts_qa"]
    their_samples = sorted(side_by_side["theirs"]["samples"]["harness_facts_qa"], key=lambda s: s["doc_id"])
    their_predictions = [sample["filtered_resps"][0] for sample in their_samples]
    assert [outcome.prediction for outcome in facts.outcomes] == their_predictions


def test_choice_loglikelihoods_equal_lm_eval(side_by_side: dict[str, Any]) -> None:
    ours: harness.EvaluationReport = side_by_side["ours"]
    for name in ("harness_reading_mc", "harness_tone"):
        (evaluation,) = [e for e in ours.evaluations if e.task.name == name]
        samples = sorted(side_by_side["theirs"]["samples"][name], key=lambda s: s["doc_id"])
        for outcome, sample in zip(evaluation.outcomes, samples, strict=True):
            their_lls = [float(response[0]) for response in sample["filtered_resps"]]
            assert list(outcome.choice_logprobs) == pytest.approx(their_lls, rel=1e-4)
