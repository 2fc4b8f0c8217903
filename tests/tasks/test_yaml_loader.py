"""lm-eval task files: `include:` chains with lm-eval's precedence, and `!function` hooks beside the YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import HarnessError
from harness.tasks.yaml_loader import FunctionReference, load_task_file, resolve_function

LM_EVAL_TASKS = Path(pytest.importorskip("lm_eval").__file__).parent / "tasks"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _lm_eval_load(path: Path) -> dict[str, object]:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False)


def test_includes_merge_in_order_and_the_including_file_wins(tmp_path: Path) -> None:
    _write(
        tmp_path / "base.yaml",
        "output_type: multiple_choice\nnum_fewshot: 1\ntask_list: [x]\nmetadata: {version: 1}\n",
    )
    _write(tmp_path / "sub" / "middle.yaml", "include: ../base.yaml\nnum_fewshot: 2\ndescription: middle\n")
    _write(tmp_path / "other.yaml", "description: other\n")
    top = _write(tmp_path / "top.yaml", "include: [sub/middle.yaml, other.yaml]\ntask: top\nnum_fewshot: 3\n")
    ours = load_task_file(top)
    assert ours == {
        "output_type": "multiple_choice",
        "num_fewshot": 3,
        "metadata": {"version": 1},
        "description": "other",
        "task": "top",
    }
    assert ours == _lm_eval_load(top)


@pytest.mark.parametrize(
    "relative",
    [
        "mmlu/default/mmlu_anatomy.yaml",
        "arc/arc_challenge.yaml",
        "gsm8k/gsm8k-cot.yaml",
        "hellaswag/hellaswag.yaml",
    ],
)
def test_real_lm_eval_files_load_as_lm_eval_loads_them(relative: str) -> None:
    path = LM_EVAL_TASKS / relative
    ours = load_task_file(path)
    theirs = _lm_eval_load(path)
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        if isinstance(value, FunctionReference):
            # lm-eval keeps an unresolved `!function` as the path of the function beside the YAML.
            assert str(value.base_dir / value.qualified_name) == theirs[key]
        else:
            assert value == theirs[key], key


def test_function_resolves_beside_the_file_that_holds_the_tag(tmp_path: Path) -> None:
    _write(tmp_path / "shared" / "utils.py", "def upper(doc):\n    return doc['text'].upper()\n")
    _write(tmp_path / "shared" / "base.yaml", "doc_to_text: !function utils.upper\n")
    top = _write(tmp_path / "task.yaml", "include: shared/base.yaml\ntask: t\n")
    reference = load_task_file(top)["doc_to_text"]
    assert isinstance(reference, FunctionReference)
    function = resolve_function(reference, top, "doc_to_text")
    assert function({"text": "abc"}) == "ABC"


def test_function_falls_back_to_an_importable_module(tmp_path: Path) -> None:
    top = _write(tmp_path / "task.yaml", "task: t\nprocess_docs: !function json.dumps\n")
    reference = load_task_file(top)["process_docs"]
    assert resolve_function(reference, top, "process_docs") is __import__("json").dumps


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "include: missing.yaml\ntask: a\n"}, "a.yaml: include: file not found: missing.yaml"),
        (
            {"a.yaml": "include: b.yaml\ntask: a\n", "b.yaml": "include: a.yaml\n"},
            "cycle of includes (a.yaml -> b.yaml -> a.yaml)",
        ),
        ({"a.yaml": "include: a.yaml\n"}, "cycle of includes (a.yaml -> a.yaml)"),
        ({"a.yaml": "- not\n- a mapping\n"}, "a.yaml: a task file must be a YAML mapping"),
        ({"a.yaml": "task: [unclosed\n"}, "a.yaml: malformed YAML at line"),
        ({"a.yaml": "include: 5\n"}, "a.yaml: include: expected a file name, got 5"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(HarnessError) as raised:
        load_task_file(tmp_path / "a.yaml")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("code", "reference", "message"),
    [
        ("", "nowhere_module_xyz.f", "!function nowhere_module_xyz.f: cannot import"),
        ("def f(doc):\n    return doc\n", "utils.g", "!function utils.g: module has no 'g'"),
        ("X = 1\n", "utils.X", "!function utils.X is not callable"),
        ("raise RuntimeError('boom')\n", "utils.f", "import failed (RuntimeError: boom)"),
        ("", "nodot", "!function needs module.attribute"),
    ],
)
def test_bad_function_references_name_the_file_and_key(
    tmp_path: Path, code: str, reference: str, message: str
) -> None:
    _write(tmp_path / "utils.py", code)
    task = _write(tmp_path / "task.yaml", f"task: t\ndoc_to_text: !function {reference}\n")
    with pytest.raises(HarnessError) as raised:
        resolve_function(load_task_file(task)["doc_to_text"], task, "doc_to_text")
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"{task}: doc_to_text")


def test_the_loader_stays_safe_for_other_tags(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.yaml", "task: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(HarnessError):
        load_task_file(path)
    assert yaml.safe_load("a: 1") == {"a": 1}
