"""lm-evaluation-harness both ways: lm-eval backends as harness models (`lm_eval:hf` gives the same numbers
as `hf`), and harness adapters as lm-eval `LM`s run by lm-eval's own task registry and evaluator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import harness
from benchmarks.lm_eval_tasks import lm_eval_copy
from harness.adapters import load_adapter
from harness.adapters.mock import MockAdapter
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    GenerationSettings,
    LoglikelihoodRequest,
    RollingLoglikelihoodRequest,
)
from harness.tasks.registry import BUILTIN_DIR

pytest.importorskip("lm_eval")

from harness.adapters.lm_eval_adapter import LMEvalAdapter
from harness.lm_eval_model import HarnessLM

TASKS = ["harness_prose_ppl", "harness_reading_mc", "harness_facts_qa"]
LIMIT = 4


@pytest.fixture(scope="module")
def lm_eval_hf(tiny_model_dir: Path) -> LMEvalAdapter:
    adapter = load_adapter(
        "lm_eval:hf",
        {"pretrained": str(tiny_model_dir), "dtype": "float32", "device": "cpu", "batch_size": "4"},
    )
    assert isinstance(adapter, LMEvalAdapter)
    return adapter


def test_the_same_task_through_hf_and_lm_eval_hf_gives_the_same_numbers(
    lm_eval_hf: LMEvalAdapter, tiny_model_dir: Path
) -> None:
    ours = harness.evaluate(
        f"hf:{tiny_model_dir}",
        TASKS,
        model_args={"batch_size": "4"},
        limit=LIMIT,
        write=False,
        use_cache=False,
    )
    through_lm_eval = harness.evaluate(lm_eval_hf, TASKS, limit=LIMIT, write=False, use_cache=False)
    pairs = [(a, b) for a, b in zip(ours.scores, through_lm_eval.scores, strict=True)]
    assert len(pairs) >= 6 and {a.metric for a, _ in pairs} >= {"acc", "exact_match", "token_perplexity"}
    for a, b in pairs:
        assert (a.task, a.metric) == (b.task, b.metric)
        assert b.value == pytest.approx(a.value, rel=1e-5, abs=1e-12), (a.task, a.metric)
    for mine, theirs in zip(ours.evaluations, through_lm_eval.evaluations, strict=True):
        assert [o.prediction for o in mine.outcomes] == [o.prediction for o in theirs.outcomes]


def test_lm_eval_adapter_identity(lm_eval_hf: LMEvalAdapter, tiny_model_dir: Path) -> None:
    assert lm_eval_hf.name == f"hf:{tiny_model_dir}"
    provenance = lm_eval_hf.provenance()
    assert (provenance["adapter"], provenance["backend"], provenance["dtype"]) == ("lm_eval", "hf", "float32")
    # The fingerprint follows the files and the backend arguments, not the object.
    same = LMEvalAdapter(lm_eval_hf.lm, backend="hf", model_args=lm_eval_hf.model_args)
    other = LMEvalAdapter(
        lm_eval_hf.lm, backend="hf", model_args={**lm_eval_hf.model_args, "max_length": "64"}
    )
    assert same.fingerprint == lm_eval_hf.fingerprint != other.fingerprint
    (result,) = lm_eval_hf.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])
    assert result.num_tokens == len(lm_eval_hf.lm._encode_pair("The capital of France is", " Paris")[1])


@pytest.mark.parametrize(
    ("spec", "model_args", "message"),
    [
        ("lm_eval:no-such-backend", {}, "unknown lm-eval backend 'no-such-backend' \\(known: .*hf"),
        ("lm_eval:", {}, "needs a backend name"),
        ("lm_eval:hf", {"pretrained": "/nonexistent/model/dir"}, "cannot create the 'hf' backend"),
    ],
)
def test_bad_backends_are_one_line_errors(spec: str, model_args: dict[str, str], message: str) -> None:
    with pytest.raises(HarnessError, match=message) as caught:
        load_adapter(spec, model_args)
    assert "\n" not in str(caught.value)


def test_a_request_kind_the_backend_cannot_serve_is_named() -> None:
    from lm_eval.models.dummy import DummyLM

    class GenerationOnly(DummyLM):
        def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
            raise NotImplementedError

    adapter = LMEvalAdapter(GenerationOnly(), backend="generation-only", model_args={})
    with pytest.raises(HarnessError, match=r"generation-only.*cannot serve loglikelihood requests"):
        adapter.loglikelihood([LoglikelihoodRequest("a", " b")])
    with pytest.raises(HarnessError, match="has no tokenizer"):
        adapter.loglikelihood_rolling([RollingLoglikelihoodRequest("x")])


# -- the other way: harness adapters inside lm-eval ---------------------------------------------------------


@pytest.fixture(scope="module")
def lm_eval_task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm_eval_tasks")
    for name in TASKS:
        lm_eval_copy(BUILTIN_DIR / f"{name}.yaml", folder)
    return folder


def test_lm_eval_runs_its_tasks_through_a_harness_adapter(lm_eval_task_dir: Path, tmp_path: Path) -> None:
    """lm-eval's task registry and metrics, harness's model: the numbers equal harness's own run."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(lm_eval_task_dir), include_defaults=False)
    cache = tmp_path / "cache.sqlite"
    lm = HarnessLM("mock:5", cache=str(cache))
    theirs = simple_evaluate(model=lm, tasks=TASKS, task_manager=manager, limit=LIMIT, bootstrap_iters=0)
    assert theirs is not None
    ours = harness.evaluate("mock:5", TASKS, limit=LIMIT, write=False, use_cache=False)
    compared = 0
    for score in ours.scores:
        key = f"{score.metric},none"
        if key in theirs["results"][score.task]:
            assert theirs["results"][score.task][key] == pytest.approx(score.value, rel=1e-9), key
            compared += 1
    assert compared >= 5
    # Requests went through harness's runner into its request cache.
    again = HarnessLM("mock:5", cache=str(cache))
    simple_evaluate(model=again, tasks=TASKS, task_manager=manager, limit=LIMIT, bootstrap_iters=0)
    assert isinstance(again.adapter, MockAdapter) and again.adapter.calls == 0


def test_harness_is_registered_as_an_lm_eval_model_name() -> None:
    from lm_eval.api.registry import get_model

    lm = get_model("harness").create_from_arg_string("model=mock:2", {"batch_size": 4})
    assert isinstance(lm, HarnessLM) and lm.adapter.name == "mock"
    assert lm.loglikelihood_rolling([_instance("loglikelihood_rolling", ("some text",))])[0] < 0
    (text,) = lm.generate_until([_instance("generate_until", ("Q: ", {"until": ["\n"], "max_gen_toks": 5}))])
    assert (
        text
        == load_adapter("mock:2").generate([GenerationRequest("Q: ", GenerationSettings(5, ("\n",)))])[0].text
    )
    with pytest.raises(HarnessError, match="generation setting 'top_k' is not supported"):
        lm.generate_until([_instance("generate_until", ("Q: ", {"until": ["\n"], "top_k": 5}))])


def _instance(kind: str, arguments: tuple[Any, ...]) -> Any:
    from lm_eval.api.instance import Instance

    return Instance(request_type=kind, doc={}, arguments=arguments, idx=0)
