"""The runner end to end on the mock adapter: dedupe, cache, resume, Python task registration, steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness
from harness.adapters.mock import MockAdapter
from harness.api import step_from_path
from harness.cache import RequestCache
from harness.requests import LoglikelihoodRequest
from harness.runner import _chunks, evaluate_tasks
from harness.tasks import TaskConfig, register_task, resolve_tasks


def _write_task(folder: Path, rows: list[dict[str, object]], name: str = "dup_task") -> Path:
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    yaml_path = folder / f"{name}.yaml"
    yaml_path.write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{q}}'\n"
        "doc_to_choice: ['yes', 'no']\ndoc_to_target: a\n",
        encoding="utf-8",
    )
    return yaml_path


def test_identical_requests_run_once(tmp_path: Path) -> None:
    rows = [{"q": "Is it?", "a": 0}] * 5 + [{"q": "Or not?", "a": 1}] * 5
    (task,) = resolve_tasks([str(_write_task(tmp_path, rows))])
    adapter = MockAdapter()
    (evaluation,) = evaluate_tasks(adapter, [task], show_progress=False)
    assert adapter.calls == 4  # two distinct contexts x two options
    assert evaluation.request_stats.total == 20
    assert len(evaluation.outcomes) == 10


def test_cached_rerun_makes_no_model_calls(tmp_path: Path) -> None:
    tasks = resolve_tasks(["harness_tone", "harness_facts_qa"])
    cache = RequestCache(tmp_path / "cache.sqlite")
    first_adapter, second_adapter = MockAdapter(), MockAdapter()
    first = evaluate_tasks(first_adapter, tasks, limit=6, cache=cache, show_progress=False)
    second = evaluate_tasks(second_adapter, tasks, limit=6, cache=cache, show_progress=False)
    assert first_adapter.calls > 0 and second_adapter.calls == 0
    assert [s.value for e in first for s in e.scores] == [s.value for e in second for s in e.scores]
    # A different model (fingerprint) shares nothing.
    third_adapter = MockAdapter(seed="other")
    evaluate_tasks(third_adapter, tasks, limit=6, cache=cache, show_progress=False)
    assert third_adapter.calls == first_adapter.calls


def test_chunks_keep_a_context_together() -> None:
    requests = [LoglikelihoodRequest(f"context {i // 4}", f" option {i % 4}") for i in range(40)]
    chunks = _chunks(requests, size=6)
    assert [request for chunk in chunks for request in chunk] == requests  # each once, in order
    chunk_of = [index for index, chunk in enumerate(chunks) for _ in chunk]
    for context in {request.context for request in requests}:
        assert len({chunk_of[i] for i, request in enumerate(requests) if request.context == context}) == 1
    # A chunk closes at the first context boundary once it holds `size` requests: two contexts of four.
    assert [len(chunk) for chunk in chunks] == [8] * 5


def test_python_registered_task(tmp_path: Path) -> None:
    data = tmp_path / "facts.jsonl"
    data.write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n", encoding="utf-8")
    register_task(
        TaskConfig(
            task="python_registered_facts",
            output_type="generate_until",
            dataset_path="json",
            data_files={"test": (data,)},
            test_split="test",
            doc_to_text="Q: {{question}}\nA:",
            doc_to_target="answer",
            generation_kwargs={"until": ["\n"]},
        )
    )
    report = harness.evaluate("mock:0", ["python_registered_facts"], store=tmp_path / "store")
    assert [s.metric for s in report.scores] == ["exact_match"]
    stored = harness.ResultStore(tmp_path / "store").scores(report.run_id)
    assert list(stored["value"]) == [report.scores[0].value]


@pytest.mark.parametrize(
    ("path", "step"),
    [
        ("runs/checkpoint-1000", 1000),
        ("runs/step_250/", 250),
        ("global_step42", 42),
        ("models/final", None),
        ("checkpoint-best", None),
    ],
)
def test_step_from_checkpoint_folder_names(path: str, step: int | None) -> None:
    assert step_from_path(path) == step


def test_samples_carry_per_sample_statistics(tmp_path: Path) -> None:
    report = harness.evaluate("mock:3", ["harness_reading_mc"], limit=5, store=tmp_path)
    samples = harness.ResultStore(tmp_path).samples(report.run_id)
    assert len(samples) == 5
    statistics = [json.loads(value) for value in samples["statistics"]]
    accuracy = sum(s["acc/correct"] for s in statistics) / sum(s["acc/count"] for s in statistics)
    (acc,) = [s for s in report.scores if s.metric == "acc"]
    assert acc.value == pytest.approx(accuracy)
    assert all(len(list(logprobs)) == 4 for logprobs in samples["choice_logprobs"])
