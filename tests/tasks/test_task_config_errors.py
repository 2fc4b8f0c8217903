"""Task fields are checked by type before any model call: one line naming the file, the key and the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.tasks import load_task_yaml
from harness.tasks.task import Task

BASE = {
    "task": "typed",
    "dataset_path": "json",
    "dataset_kwargs": {"data_files": {"test": "d.jsonl"}},
    "test_split": "test",
    "output_type": "generate_until",
    "doc_to_text": "{{q}}",
    "doc_to_target": "a",
}

CASES: dict[str, tuple[dict[str, object], str]] = {
    "generation_kwargs list": ({"generation_kwargs": [1, 2]}, "generation_kwargs must be a mapping"),
    "max_gen_toks text": (
        {"generation_kwargs": {"max_gen_toks": "abc"}},
        "max_gen_toks must be a positive integer",
    ),
    "max_gen_toks bool": (
        {"generation_kwargs": {"max_gen_toks": True}},
        "max_gen_toks must be a positive integer",
    ),
    "temperature text": ({"generation_kwargs": {"temperature": "hot"}}, "temperature must be a number"),
    "temperature bool": ({"generation_kwargs": {"temperature": False}}, "temperature must be a number"),
    "until number": ({"generation_kwargs": {"until": 5}}, "until must be a string or a list of strings"),
    "until list of numbers": ({"generation_kwargs": {"until": [5]}}, "until must be a string or a list"),
    "unknown generation key": ({"generation_kwargs": {"max_tokens": 5}}, "unknown generation_kwargs key"),
    "test_split list": ({"test_split": ["test"]}, "test_split must be a string, not list"),
    "fewshot_split number": ({"fewshot_split": 3}, "fewshot_split must be a string, not int"),
    "num_fewshot bool": ({"num_fewshot": True}, "num_fewshot must be an integer >= 0, got True"),
    "num_fewshot negative": ({"num_fewshot": -1}, "num_fewshot must be an integer >= 0"),
    "num_fewshot text": ({"num_fewshot": "5"}, "num_fewshot must be an integer >= 0"),
    "repeats zero": ({"repeats": 0}, "repeats must be an integer >= 1"),
    "task empty": ({"task": ""}, "task must be a non-empty name"),
    "task null": ({"task": None}, "task must be a non-empty name"),
    "task list": ({"task": ["a"]}, "task must be a non-empty name"),
    "dataset_path empty": ({"dataset_path": ""}, "dataset_path must be a non-empty string"),
    "dataset_kwargs list": ({"dataset_kwargs": ["x"]}, "dataset_kwargs must be a mapping"),
    "data_files number": (
        {"dataset_kwargs": {"data_files": 5}},
        "data_files must be a path, list or mapping",
    ),
    "description number": ({"description": 5}, "description must be a string"),
    "target_delimiter number": ({"target_delimiter": 5}, "target_delimiter must be a string, not int"),
    "fewshot_delimiter list": ({"fewshot_delimiter": ["\n"]}, "fewshot_delimiter must be a string, not list"),
    "metadata list": ({"metadata": [1]}, "metadata must be a mapping"),
    "metric_list mapping": ({"metric_list": {"metric": "acc"}}, "metric_list must be a list"),
    "metric without name": ({"metric_list": [{"aggregation": "mean"}]}, "needs a 'metric' key"),
    "higher_is_better text": (
        {"metric_list": [{"metric": "exact_match", "higher_is_better": "yes"}]},
        "higher_is_better must be true or false",
    ),
    "output_type unknown": ({"output_type": "classify"}, "output_type 'classify' is not one of"),
    "fewshot_config list": ({"fewshot_config": ["x"]}, "fewshot_config must be a mapping"),
    "fewshot sampler unknown": (
        {"fewshot_config": {"sampler": "balanced"}},
        "sampler 'balanced' is not one of",
    ),
    "fewshot_config unknown key": ({"fewshot_config": {"samplr": "first_n"}}, "unknown fewshot_config key"),
    "filter_list mapping": ({"filter_list": {"name": "x"}}, "filter_list"),
    "tag number": ({"tag": 5}, "tag must be a name or a list of names"),
    "use_prompt": ({"use_prompt": "promptsource:x"}, "use_prompt: promptsource prompts are not supported"),
    "max_gen_toks huge": ({"generation_kwargs": {"max_gen_toks": 10**30}}, "up to 1,000,000"),
    "max_new_tokens zero": (
        {"generation_kwargs": {"max_new_tokens": 0}},
        "max_new_tokens must be a positive",
    ),
    "temperature negative": ({"generation_kwargs": {"temperature": -1}}, "temperature must be a number >= 0"),
    "top_p text": ({"generation_kwargs": {"top_p": "high"}}, "top_p must be a number"),
    "do_sample text": ({"generation_kwargs": {"do_sample": "yes"}}, "do_sample must be true or false"),
    "seed text": ({"generation_kwargs": {"seed": "1"}}, "seed must be an integer"),
    "repeats huge": ({"repeats": 10**12}, "repeats must be at most 10,000"),
    "repeats text": ({"repeats": "3"}, "repeats must be an integer >= 1, got '3'"),
    "num_fewshot float": ({"num_fewshot": 1.5}, "num_fewshot must be an integer >= 0, got 1.5"),
    "dataset_name number": ({"dataset_name": 5}, "dataset_name must be a string, not int"),
    "validation_split list": ({"validation_split": ["v"]}, "validation_split must be a string, not list"),
    "output_type list": ({"output_type": ["generate_until"]}, "is not one of"),
    "doc_to_text list": ({"doc_to_text": [1]}, "doc_to_text must be a field name or a template, not list"),
    "doc_to_choice number": (
        {"output_type": "multiple_choice", "doc_to_choice": 5},
        "doc_to_choice must be a list, mapping, field or template",
    ),
    "doc_to_choice empty": (
        {"output_type": "multiple_choice", "doc_to_choice": []},
        "doc_to_choice must give a non-empty list",
    ),
    "data_files missing": ({"dataset_kwargs": {"data_files": {"test": "nowhere.jsonl"}}}, "nowhere.jsonl"),
    "unknown key": ({"num_fewshots": 2}, "unknown task key 'num_fewshots' (did you mean 'num_fewshot'?)"),
    "unknown key far": ({"colour": "blue"}, "unknown task key 'colour'"),
}


def _write(folder: Path, overrides: dict[str, object]) -> Path:
    (folder / "d.jsonl").write_text(json.dumps({"q": "x", "a": "y"}) + "\n", encoding="utf-8")
    config = {**BASE, **overrides}
    path = folder / "typed.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_mistyped_field_is_one_line_naming_file_and_key(tmp_path: Path, case: str) -> None:
    overrides, message = CASES[case]
    path = _write(tmp_path, overrides)
    with pytest.raises(HarnessError) as raised:
        Task(load_task_yaml(path)).build_instances()
    text = str(raised.value)
    assert message in text
    assert text.startswith(str(path.resolve())) or "typed" in text
    assert "\n" not in text


def test_a_correct_config_builds(tmp_path: Path) -> None:
    path = _write(tmp_path, {"generation_kwargs": {"until": ["\n"], "max_gen_toks": 8, "temperature": 0}})
    assert len(Task(load_task_yaml(path)).build_instances()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"task: caf\xe9\n", "not UTF-8 text (byte 9)"),
        (b"a:" + b" [" * 5000 + b"]" * 5000, "exceeded maximum nesting depth"),
        (b"task: [unclosed\n", "malformed YAML at line"),
        (b"", "a task file must be a YAML mapping"),
    ],
)
def test_unreadable_task_files_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(HarnessError) as raised:
        load_task_yaml(path)
    assert message in str(raised.value)
