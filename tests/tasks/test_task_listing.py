"""`harness tasks` over lm-eval's whole shipped task folder: every name lm-eval indexes, no error rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")
LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"


def test_lists_every_name_lm_evals_task_manager_indexes(tmp_path: Path) -> None:
    from lm_eval.tasks import TaskManager

    theirs = set(TaskManager().all_tasks)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "tasks",
            "--include-path",
            str(LM_EVAL_TASKS),
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    ours = {row["task"]: row for row in rows}
    missing = sorted(theirs - set(ours))
    assert len(missing) <= len(theirs) // 100, missing[:20]
    assert {row["kind"] for row in rows} <= {"task", "group", "tag", "python_task"}
    assert ours["mmlu"]["kind"] == "group" and ours["gsm8k"]["kind"] == "task"
    assert ours["mmlu_anatomy"]["source"] == str(LM_EVAL_TASKS / "mmlu" / "default" / "mmlu_anatomy.yaml")
