"""Broken lm-eval task folders fail before any model call: exit 2, one line naming the file and the key,
and nothing written to the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = [{"question": f"Is {i} even?", "label": i % 2} for i in range(4)]
TASK = """task: yes_no
dataset_path: json
dataset_kwargs:
  data_files:
    test: data.jsonl
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: ["yes", "no"]
doc_to_target: label
"""


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_STORE": str(folder / "default_store")}
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--model",
        "mock:0",
        "--store",
        "store",
        "--quiet",
        *args,
    ]
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=300
    )


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "data.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in DOCS), encoding="utf-8")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


CASES = {
    "missing include": (
        {"t.yaml": "include: base.yaml\n" + TASK},
        "t.yaml: include: file not found: base.yaml",
    ),
    "include cycle": (
        {"t.yaml": "include: u.yaml\n" + TASK, "u.yaml": "include: t.yaml\n"},
        "include: cycle of includes (t.yaml -> u.yaml -> t.yaml)",
    ),
    "missing function module": (
        {"t.yaml": TASK.replace('doc_to_text: "{{question}}"', "doc_to_text: !function nothere.text")},
        "t.yaml: doc_to_text: !function nothere.text: cannot import",
    ),
    "missing function attribute": (
        {
            "t.yaml": TASK.replace('doc_to_text: "{{question}}"', "doc_to_text: !function helpers.text"),
            "helpers.py": "def other(doc):\n    return ''\n",
        },
        "t.yaml: doc_to_text: !function helpers.text: module has no 'text'",
    ),
    "unknown filter": (
        {"t.yaml": TASK + "filter_list:\n  - name: f\n    filter:\n      - function: regx\n"},
        "unknown filter function 'regx'",
    ),
    "group names a missing task": (
        {"t.yaml": TASK, "g.yaml": "group: both\ntask: [yes_no, no_such_task]\n"},
        "g.yaml: task: group 'both' names unknown task 'no_such_task'",
    ),
    "hub dataset not available offline": (
        {
            "t.yaml": TASK.replace("dataset_path: json", "dataset_path: someone/no_such_dataset").replace(
                "dataset_kwargs:\n  data_files:\n    test: data.jsonl\n", "test_split: test\n"
            )
        },
        "someone/no_such_dataset",
    ),
    "unknown key": (
        {"t.yaml": TASK + "num_fewshots: 2\n"},
        "t.yaml: unknown task key 'num_fewshots' (did you mean 'num_fewshot'?)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_task_folders_are_one_line_errors(tmp_path: Path, case: str) -> None:
    files, message = CASES[case]
    folder = _folder(tmp_path, files)
    spec = "both" if "group" in case else "yes_no"
    result = _run(folder, "--include-path", ".", "--tasks", spec)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    store = folder / "store"
    assert not any(store.rglob("*.parquet"))
