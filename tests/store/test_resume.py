"""A `harness run` killed with SIGKILL mid-run leaves a readable store, and the next run resumes from the
request cache and gets exactly the scores of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import harness
from harness.runner import CHUNK_REQUESTS
from harness.store import CACHE_FILE_NAMES, TABLES

# Short distinct texts (one scoring window each), five cache chunks' worth: the run is long enough to
# be caught between its first and its last cache commit, and short enough to finish in seconds.
TEXT_COUNT = 5 * CHUNK_REQUESTS
WORDS = [
    "river",
    "stone",
    "light",
    "house",
    "quiet",
    "morning",
    "evening",
    "garden",
    "window",
    "letter",
    "music",
    "travel",
    "winter",
    "summer",
    "bright",
    "dark",
    "old",
    "new",
    "green",
    "small",
    "large",
    "slowly",
    "quickly",
    "the",
    "a",
    "of",
    "and",
]
TASK_YAML = """\
task: resume_rolling
dataset_path: json
dataset_kwargs:
  data_files:
    test: texts.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: bits_per_byte
"""
STATS = re.compile(r"(\d+) distinct requests, (\d+) from cache, (\d+) run on the model")
RUN_TIMEOUT_S = 300
KILL_DEADLINE_S = 240


@pytest.fixture
def rolling_task(tmp_path: Path) -> Path:
    folder = tmp_path / "task_files"
    folder.mkdir()
    rng = random.Random(7)
    with (folder / "texts.jsonl").open("w", encoding="utf-8") as handle:
        for index in range(TEXT_COUNT):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14)))
            handle.write(json.dumps({"text": f"Passage {index}: {words}."}) + "\n")
    path = folder / "resume_rolling.yaml"
    path.write_text(TASK_YAML, encoding="utf-8")
    return path


def _env(cwd: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HARNESS_STORE"] = str(cwd / "default_store")
    # One thread: on a small shared machine, torch's thread pool only adds contention.
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def _run_command(model_dir: Path, task: Path, store: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--model",
        f"hf:{model_dir}",
        "--model-args",
        "batch_size=1",
        "--tasks",
        str(task),
        "--store",
        str(store),
        "--format",
        "json",
        "--quiet",
    ]


def _cached_rolling_results(cache_file: Path) -> int | None:
    """Committed rolling-loglikelihood rows in the request cache, read-only; None while unreadable."""
    if not cache_file.exists():
        return None
    try:
        connection = sqlite3.connect(f"{cache_file.as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            row = connection.execute(
                "SELECT COUNT(*) FROM results WHERE kind = 'loglikelihood_rolling'"
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.OperationalError:  # not created yet, no table yet, or briefly locked
        return None
    return int(row[0])


def _stats(stderr: str) -> tuple[int, int, int]:
    found = STATS.findall(stderr)
    assert len(found) == 1, stderr
    distinct, cached, model = (int(value) for value in found[0])
    return distinct, cached, model


def _kill_mid_run(command: list[str], cwd: Path, cache_file: Path) -> int:
    """Start the run, SIGKILL it once some but not all results are cached; the number cached then."""
    with (cwd / "killed.stdout").open("w") as stdout, (cwd / "killed.stderr").open("w") as stderr:
        process = subprocess.Popen(command, cwd=cwd, env=_env(cwd), stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + KILL_DEADLINE_S
            while True:
                count = _cached_rolling_results(cache_file)
                if count is not None and 0 < count < TEXT_COUNT:
                    process.send_signal(signal.SIGKILL)
                    break
                if process.poll() is not None:
                    pytest.fail(
                        f"the run ended (exit {process.returncode}) before it could be interrupted; "
                        f"{count} results cached; stderr:\n{(cwd / 'killed.stderr').read_text()}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(f"no partial progress within {KILL_DEADLINE_S} s ({count} results cached)")
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    cached = _cached_rolling_results(cache_file)
    assert cached is not None and 0 < cached < TEXT_COUNT
    return cached


def _scores(store: Path, run_id: str) -> pd.DataFrame:
    frame = harness.ResultStore(store).scores(run_id=run_id)
    return frame.sort_values(["task", "metric"], ignore_index=True)


def _sample_statistics(store: Path, run_id: str) -> list[tuple[int, dict[str, float]]]:
    frame = harness.ResultStore(store).samples(run_id=run_id).sort_values("doc_id")
    return [
        (int(doc_id), json.loads(stats))
        for doc_id, stats in zip(frame["doc_id"], frame["statistics"], strict=True)
    ]


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_scores(
    tmp_path: Path, tiny_model_dir: Path, rolling_task: Path
) -> None:
    store = tmp_path / "store"
    fresh_store = tmp_path / "fresh_store"
    cache_file = store / "cache.sqlite"

    # A completed run already in the store: the kill must leave it, and the store, readable.
    earlier = harness.evaluate(model="mock:0", tasks=["harness_tone"], limit=3, store=store)

    # The uninterrupted reference runs alongside, in a store of its own.
    with (tmp_path / "fresh.stderr").open("w") as fresh_stderr:
        fresh = subprocess.Popen(
            _run_command(tiny_model_dir, rolling_task, fresh_store),
            cwd=tmp_path,
            env=_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=fresh_stderr,
        )
        try:
            cached_at_kill = _kill_mid_run(
                _run_command(tiny_model_dir, rolling_task, store), tmp_path, cache_file
            )

            # Killed mid-run: readable, no run recorded for it, nothing but the earlier run's parts.
            runs = harness.ResultStore(store).runs()
            assert runs["run_id"].tolist() == [earlier.run_id]
            for table in TABLES:
                directory = store / table
                if directory.is_dir() and any(directory.glob("*.parquet")):
                    frame = pd.read_parquet(directory)
                    assert set(frame["run_id"]) == {earlier.run_id}, table
            leftovers = {
                path.name
                for table in TABLES
                if (store / table).is_dir()
                for path in (store / table).iterdir()
                if path.name != f"part-{earlier.run_id}.parquet"
            }
            assert not leftovers
            assert {path.name for path in store.iterdir() if path.is_file()} <= {
                "_harness_store.json",
                *CACHE_FILE_NAMES,
            }

            resumed = subprocess.run(
                _run_command(tiny_model_dir, rolling_task, store),
                cwd=tmp_path,
                env=_env(tmp_path),
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
            fresh.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if fresh.poll() is None:
                fresh.kill()
                fresh.wait()
    assert resumed.returncode == 0, resumed.stderr
    assert fresh.returncode == 0, (tmp_path / "fresh.stderr").read_text()

    # The resumed run served only what the killed run had not cached.
    distinct, from_cache, on_model = _stats(resumed.stderr)
    assert distinct == TEXT_COUNT
    assert from_cache == cached_at_kill
    assert on_model == TEXT_COUNT - cached_at_kill < TEXT_COUNT
    assert _stats((tmp_path / "fresh.stderr").read_text()) == (TEXT_COUNT, 0, TEXT_COUNT)

    (resumed_run_id,) = {row["run_id"] for row in json.loads(resumed.stdout)}
    assert harness.ResultStore(store).runs()["run_id"].tolist() == [earlier.run_id, resumed_run_id]
    (fresh_run_id,) = harness.ResultStore(fresh_store).runs()["run_id"].tolist()

    resumed_scores, fresh_scores = _scores(store, resumed_run_id), _scores(fresh_store, fresh_run_id)
    assert resumed_scores[["task", "metric", "n"]].values.tolist() == [
        ["resume_rolling", "bits_per_byte", TEXT_COUNT],
        ["resume_rolling", "word_perplexity", TEXT_COUNT],
    ]
    assert fresh_scores[["task", "metric", "n"]].values.tolist() == (
        resumed_scores[["task", "metric", "n"]].values.tolist()
    )
    for column in ("value", "stderr", "ci_low", "ci_high"):
        assert resumed_scores[column].tolist() == pytest.approx(
            fresh_scores[column].tolist(), rel=1e-9, abs=1e-9
        ), column

    # Document by document, too: cached results replay exactly what the model computed.
    resumed_samples = _sample_statistics(store, resumed_run_id)
    fresh_samples = _sample_statistics(fresh_store, fresh_run_id)
    assert len(resumed_samples) == TEXT_COUNT
    assert [doc_id for doc_id, _ in resumed_samples] == [doc_id for doc_id, _ in fresh_samples]
    for (doc_id, resumed_stats), (_, fresh_stats) in zip(resumed_samples, fresh_samples, strict=True):
        assert resumed_stats.keys() == fresh_stats.keys(), doc_id
        for name, value in resumed_stats.items():
            assert value == pytest.approx(fresh_stats[name], rel=1e-9, abs=1e-9), (doc_id, name)
