"""The same YAML gives the same requests in harness and in lm-evaluation-harness (no model needed).

Prompts are where most silent differences between harnesses hide: few-shot sampling order, delimiters,
descriptions, Jinja rendering and how targets map to choices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from benchmarks.lm_eval_tasks import lm_eval_copy
from harness.requests import GenerationRequest, LoglikelihoodRequest, RollingLoglikelihoodRequest
from harness.tasks import load_task_yaml
from harness.tasks.registry import BUILTIN_DIR
from harness.tasks.task import Task

lm_eval_tasks = pytest.importorskip("lm_eval.tasks")

ANIMALS = [
    {"q": f"Which animal says {sound}?", "choices": [a, b, c], "gold": i % 3, "label": [a, b, c][i % 3]}
    for i, (sound, a, b, c) in enumerate(
        [
            ("moo", "cow", "dog", "cat"),
            ("woof", "dog", "cow", "hen"),
            ("meow", "cat", "pig", "dog"),
            ("oink", "pig", "cat", "cow"),
            ("cluck", "hen", "dog", "pig"),
            ("baa", "sheep", "cow", "cat"),
            ("neigh", "horse", "hen", "pig"),
            ("quack", "duck", "cat", "dog"),
        ]
    )
]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _lm_eval_requests(yaml_path: Path, limit: int) -> dict[int, list[tuple[Any, ...]]]:
    # Without lm-eval's own task index the manager loads in milliseconds instead of many seconds.
    manager = lm_eval_tasks.TaskManager(include_path=str(yaml_path.parent), include_defaults=False)
    name = yaml.safe_load(yaml_path.read_text())["task"]
    task = manager.load([name])["tasks"][name]
    task.set_fewshot_seed(seed=1234)
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    by_doc: dict[int, list[tuple[Any, ...]]] = {}
    for instance in sorted(task.instances, key=lambda i: (i.doc_id, i.idx)):
        by_doc.setdefault(instance.doc_id, []).append(tuple(instance.arguments))
    return by_doc


def _harness_requests(yaml_path: Path, limit: int) -> dict[int, list[tuple[Any, ...]]]:
    task = Task(load_task_yaml(yaml_path))
    by_doc: dict[int, list[tuple[Any, ...]]] = {}
    for instance in task.build_instances(limit):
        for request in instance.requests:
            if isinstance(request, LoglikelihoodRequest):
                arguments: tuple[Any, ...] = (request.context, request.continuation)
            elif isinstance(request, RollingLoglikelihoodRequest):
                arguments = (request.text,)
            else:
                assert isinstance(request, GenerationRequest)
                assert isinstance(request.prompt, str)
                arguments = (request.prompt, list(request.settings.stop), request.settings.max_tokens)
            by_doc.setdefault(instance.doc_id, []).append(arguments)
    return by_doc


def _normalise_lm_eval(by_doc: dict[int, list[tuple[Any, ...]]]) -> dict[int, list[tuple[Any, ...]]]:
    normalised = {}
    for doc_id, arguments in by_doc.items():
        rows = []
        for item in arguments:
            if len(item) == 2 and isinstance(item[1], dict):
                kwargs = item[1]
                rows.append((item[0], list(kwargs["until"]), kwargs.get("max_gen_toks", 256)))
            else:
                rows.append(item)
        normalised[doc_id] = rows
    return normalised


CASES: dict[str, dict[str, Any]] = {
    "mc_fewshot_same_split": {
        "output_type": "multiple_choice",
        "description": "Animal sounds.\n\n",
        "num_fewshot": 2,
        "fewshot_split": "test",
        "doc_to_text": "Q: {{q}}\nA:",
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
    },
    "mc_string_target_jinja_choices": {
        "output_type": "multiple_choice",
        "num_fewshot": 1,
        "fewshot_split": "train",
        "doc_to_text": "{{q}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "label",
        "target_delimiter": " -> ",
        "fewshot_delimiter": "\n###\n",
    },
    "loglikelihood_target": {
        "output_type": "loglikelihood",
        "num_fewshot": 3,
        "fewshot_split": "train",
        "doc_to_text": "{{q | upper}}",
        "doc_to_target": " {{label}}",
        "description": "Sounds of the {{label}}:\n",
    },
    "generate_fewshot": {
        "output_type": "generate_until",
        "num_fewshot": 2,
        "fewshot_split": "test",
        "doc_to_text": "Question: {{q}}\nAnswer:",
        "doc_to_target": "label",
        "generation_kwargs": {"until": ["\n", "."], "max_gen_toks": 7, "do_sample": False},
    },
    "rolling": {
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "{{q}} {{label}}",
    },
}


# List-valued choices do not round-trip through CSV (in either harness), so CSV covers the other cases.
FORMAT_CASES = [(case, "jsonl") for case in sorted(CASES)] + [
    (case, "csv") for case in sorted(CASES) if not case.startswith("mc")
]


@pytest.mark.parametrize(("case", "data_format"), FORMAT_CASES)
def test_same_requests_as_lm_eval(tmp_path: Path, case: str, data_format: str) -> None:
    rows = ANIMALS
    if data_format == "jsonl":
        _write_jsonl(tmp_path / "test.jsonl", rows)
        _write_jsonl(tmp_path / "train.jsonl", list(reversed(rows)))
        builder = "json"
    else:
        pd.DataFrame(rows).drop(columns=["choices"]).to_csv(tmp_path / "test.csv", index=False)
        pd.DataFrame(list(reversed(rows))).drop(columns=["choices"]).to_csv(
            tmp_path / "train.csv", index=False
        )
        builder = "csv"
    config = {
        "task": f"parity_{case}_{data_format}",
        "dataset_path": builder,
        "dataset_kwargs": {
            "data_files": {
                "test": str(tmp_path / f"test.{data_format}"),
                "train": str(tmp_path / f"train.{data_format}"),
            }
        },
        "test_split": "test",
        **CASES[case],
    }
    yaml_dir = tmp_path / "yaml"
    yaml_dir.mkdir()
    yaml_path = yaml_dir / f"{config['task']}.yaml"
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    ours = _harness_requests(yaml_path, limit=6)
    theirs = _normalise_lm_eval(_lm_eval_requests(yaml_path, limit=6))
    assert ours == theirs


@pytest.mark.parametrize(
    "name", ["harness_reading_mc", "harness_tone", "harness_facts_qa", "harness_prose_ppl"]
)
def test_builtin_suite_requests_match_lm_eval(tmp_path: Path, name: str) -> None:
    copy = lm_eval_copy(BUILTIN_DIR / f"{name}.yaml", tmp_path)
    ours = _harness_requests(copy, limit=12)
    theirs = _normalise_lm_eval(_lm_eval_requests(copy, limit=12))
    assert ours == theirs
