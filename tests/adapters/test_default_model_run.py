"""`harness run` with no --model evaluates the real embedded default model (a small slice here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.tasks import DEFAULT_SUITE

pytestmark = pytest.mark.slow


def test_default_model_on_the_builtin_suite(default_model_path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HARNESS_CACHE_DIR": str(default_model_path.parent.parent)}
    command = [sys.executable, "-m", "harness.cli", "run", "--limit", "3", "--store", str(tmp_path / "store")]
    first = subprocess.run(
        [*command, "--format", "json"], capture_output=True, text=True, env=env, check=False
    )
    assert first.returncode == 0, first.stderr
    scores = json.loads(first.stdout)
    assert {row["task"] for row in scores} >= set(DEFAULT_SUITE)
    assert {row["model"] for row in scores} == {"SmolLM2-135M-Instruct"}
    by_metric = {(row["task"], row["metric"]): row["value"] for row in scores}
    # A real pretrained model: English prose is far from uniform over a 49k vocabulary.
    assert 1.0 < by_metric[("first_look_prose_ppl", "byte_perplexity")] < 3.0

    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "scores",
            "--store",
            str(tmp_path / "store"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(listed.stdout), key=lambda r: (r["task"], r["metric"])) == sorted(
        scores, key=lambda r: (r["task"], r["metric"])
    )

    table = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert table.returncode == 0, table.stderr
    assert "first_look_reading_mc" in table.stdout and "acc_norm" in table.stdout
    assert "0 run on the model" in table.stderr  # the second run is served from the cache
