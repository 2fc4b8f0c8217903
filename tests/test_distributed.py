"""One `harness run` under torchrun: every rank serves its share, rank 0 stores one run and shows one bar."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.api import evaluate
from harness.store import ResultStore

TASKS = "harness_reading_mc,harness_prose_ppl"
LIMIT = 12


def _torchrun() -> list[str]:
    found = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if not Path(found).exists():
        pytest.fail("torchrun is not installed beside this Python (it comes with torch)")
    return [found, "--standalone", "--nproc_per_node", "2"]


def test_torchrun_two_ranks_store_one_run_with_single_process_scores(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    model = f"hf:{tiny_model_dir}"
    reference = evaluate(model, TASKS, limit=LIMIT, store=tmp_path / "reference", bootstrap_resamples=0)
    store, logs = tmp_path / "store", tmp_path / "logs"
    command = [
        *_torchrun(),
        "--redirects",
        "3",  # each rank's stdout and stderr into its own file under --log-dir
        "--log-dir",
        str(logs),
        "-m",
        "harness.cli",
        "run",
        "--model",
        model,
        "--tasks",
        TASKS,
        "--limit",
        str(LIMIT),
        "--store",
        str(store),
        "--bootstrap-resamples",
        "0",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]

    runs = ResultStore(store).runs()
    assert len(runs) == 1
    stored = ResultStore(store).scores(run_id=str(runs["run_id"].iloc[0]))
    values = {(row.task, row.metric): row.value for row in stored.itertuples()}
    assert len(values) == len(reference.scores)
    for score in reference.scores:
        assert math.isclose(values[(score.task, score.metric)], score.value, rel_tol=1e-6), score

    def rank_file(rank: int, name: str) -> str:
        (path,) = logs.glob(f"*/attempt_0/{rank}/{name}")
        return path.read_text()

    # One progress bar per task, on rank 0 only; rank 1 prints nothing of its own.
    for task in TASKS.split(","):
        assert f"{task}:" in rank_file(0, "stderr.log")
        assert f"{task}:" not in rank_file(1, "stderr.log")
    assert "req" not in rank_file(1, "stderr.log")
    assert "run " in rank_file(0, "stderr.log") and rank_file(1, "stdout.log") == ""
    assert "harness_reading_mc" in rank_file(0, "stdout.log")
