"""Everything installs under the one `harness` namespace, so a user's own `metrics.py` or `tasks/` is safe."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MAPPED = ("tasks", "metrics", "fairness", "leaderboard")

TRAINING_SCRIPT = textwrap.dedent(
    """
    import metrics
    import tasks
    from tasks.schedule import warmup

    import harness

    report = harness.evaluate("mock:3", ["harness_reading_mc"], limit=4, write=False, use_cache=False)
    assert metrics.LOCAL and warmup() == 10
    print("scores", len(report.scores), report.scores[0].metric)
    """
)


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


@pytest.mark.parametrize("name", MAPPED)
def test_the_source_folders_are_not_top_level_packages(name: str, tmp_path: Path) -> None:
    result = _python(f"import {name}", tmp_path)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr
    namespaced = _python(f"import harness.{name}; print(harness.{name}.__name__)", tmp_path)
    assert namespaced.returncode == 0, namespaced.stderr
    assert namespaced.stdout.strip() == f"harness.{name}"


def test_evaluate_runs_beside_a_training_scripts_own_metrics_and_tasks(tmp_path: Path) -> None:
    (tmp_path / "metrics.py").write_text("LOCAL = True\n", encoding="utf-8")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "tasks" / "schedule.py").write_text("def warmup():\n    return 10\n", encoding="utf-8")
    script = tmp_path / "train.py"
    script.write_text(TRAINING_SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("scores 2 acc")
