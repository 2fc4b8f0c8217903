"""Shards: separate processes answer shares of one run into caches of their own; a merge run scores them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.adapters.mock import MockAdapter
from harness.api import evaluate
from harness.cache import RequestCache
from harness.cli import main
from harness.errors import HarnessError
from harness.requests import LoglikelihoodRequest, RollingLoglikelihoodRequest
from harness.shards import Shard, parse_shard, shard_from_environment, split_requests

TASKS = "harness_reading_mc,harness_prose_ppl"
LIMIT = 12

# A deterministic model that takes a known time per request, so a shard can be killed while it works.
SLOW_MODEL = textwrap.dedent(
    """
    import hashlib
    import time

    from harness.requests import LoglikelihoodResult


    class SlowModel:
        fingerprint = "slow-model-1"
        name = "slow"

        def loglikelihood(self, requests, progress=None):
            results = []
            for request in requests:
                time.sleep(0.03)
                digest = hashlib.sha256((request.context + request.continuation).encode()).digest()
                results.append(LoglikelihoodResult(-digest[0] / 10.0, digest[1] % 2 == 0, 3))
            return results


    def build():
        return SlowModel()
    """
)


def _shard_command(model: str, shard: str, cache: Path, tasks: str, limit: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--model",
        model,
        "--tasks",
        tasks,
        "--limit",
        str(limit),
        "--shard",
        shard,
        "--cache",
        str(cache),
        "--quiet",
    ]


def _rows(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the shard has not created its table yet


def test_parse_shard_and_environment() -> None:
    assert parse_shard("1/4") == Shard(1, 4)
    for bad in ("3/2", "2/2", "0/0", "-1/2", "1", "a/b"):
        with pytest.raises(HarnessError):
            parse_shard(bad)
    assert shard_from_environment({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "8"}) == Shard(2, 8)
    slurm_range = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "8"}
    assert shard_from_environment(slurm_range) == Shard(2, 4)
    indexed_job = {"JOB_COMPLETION_INDEX": "3", "HARNESS_SHARD_COUNT": "5"}
    assert shard_from_environment(indexed_job) == Shard(3, 5)
    assert shard_from_environment({"RANK": "1", "WORLD_SIZE": "2"}) == Shard(1, 2)
    assert shard_from_environment({}) is None
    assert parse_shard("auto", {"RANK": "0", "WORLD_SIZE": "3"}) == Shard(0, 3)
    with pytest.raises(HarnessError, match="HARNESS_SHARD_COUNT"):
        shard_from_environment({"JOB_COMPLETION_INDEX": "0"})
    with pytest.raises(HarnessError, match="found no shard"):
        parse_shard("auto", {})


def _text_length(request: object) -> int:
    return len(request.text) if isinstance(request, RollingLoglikelihoodRequest) else 0


def test_split_is_deterministic_balanced_and_keeps_options_together() -> None:
    requests = [
        LoglikelihoodRequest(f"context {i} " + "x" * (i * 7 % 50), f" option {j}")
        for i in range(40)
        for j in range(4)
    ] + [RollingLoglikelihoodRequest("text " * (i % 9 + 1)) for i in range(30)]
    shares = split_requests(requests + requests[:10], 3)  # duplicates are served once
    assert [set(share) for share in shares] == [set(share) for share in split_requests(requests[::-1], 3)]
    assert sorted(map(repr, (r for share in shares for r in share))) == sorted(map(repr, set(requests)))
    for share in shares:
        contexts = {r.context for r in share if isinstance(r, LoglikelihoodRequest)}
        for other in shares:
            if other is not share:
                assert not contexts & {r.context for r in other if isinstance(r, LoglikelihoodRequest)}
    loads = [
        sum(
            len(r.context) + len(r.continuation) if isinstance(r, LoglikelihoodRequest) else _text_length(r)
            for r in s
        )
        for s in shares
    ]
    assert max(loads) - min(loads) < 0.1 * sum(loads) / 3


def test_two_shard_processes_then_a_merge_with_no_model_calls(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = f"hf:{tiny_model_dir}"
    reference = evaluate(model, TASKS, limit=LIMIT, store=tmp_path / "reference", bootstrap_resamples=0)
    caches = [tmp_path / "shards" / f"part-{index}.sqlite" for index in range(2)]
    # Shard 0 is named on the command line; shard 1 reads it from a Slurm job array's environment.
    slurm = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    shards = [
        subprocess.Popen(
            _shard_command(model, shard, cache, TASKS, LIMIT),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for shard, cache, environment in (("0/2", caches[0], dict(os.environ)), ("auto", caches[1], slurm))
    ]
    outputs = [shard.communicate(timeout=120) for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], outputs
    assert all("no run stored" in err for _, err in outputs)
    assert "shard 0/2:" in outputs[0][1] and "shard 1/2:" in outputs[1][1]
    counts = [_rows(cache) for cache in caches]
    assert sum(counts) == reference.request_stats.unique and min(counts) > 0
    merged = evaluate(
        model, TASKS, limit=LIMIT, store=tmp_path / "merged", caches=caches, bootstrap_resamples=0
    )
    assert merged.request_stats.model_requests == 0
    assert merged.request_stats.cached == reference.request_stats.unique
    assert [(s.task, s.metric, s.value) for s in merged.scores] == [
        (s.task, s.metric, s.value) for s in reference.scores
    ]
    assert not (tmp_path / "shards" / "_harness_store.json").exists()  # shards write no run anywhere


def test_killed_shard_reruns_only_what_it_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slow_model.py").write_text(SLOW_MODEL)
    monkeypatch.chdir(tmp_path)  # the python adapter imports the model module from the working directory
    cache = tmp_path / "part-0.sqlite"
    command = _shard_command("python:slow_model:build", "0/2", cache, "harness_reading_mc", 64)
    shard = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _rows(cache) == 0 and shard.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shard.poll() is None, "the shard finished before it could be killed mid-way"
    os.kill(shard.pid, signal.SIGKILL)
    shard.wait()
    answered = _rows(cache)
    rerun = evaluate("python:slow_model:build", "harness_reading_mc", limit=64, shard="0/2", caches=[cache])
    share = rerun.request_stats.unique
    assert 0 < answered < share
    assert rerun.request_stats.cached == answered
    assert rerun.request_stats.model_requests == share - answered
    assert _rows(cache) == share
    assert rerun.run_id == "" and rerun.store is None


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_bad_shard_and_cache_input_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["run", "--tasks", "harness_reading_mc", "--limit", "3", "--quiet", "--store", str(tmp_path / "s")]
    code, err = _run(
        [*base, "--model", "mock:1", "--shard", "3/2", "--cache", str(tmp_path / "x.sqlite")], capsys
    )
    assert code == 2 and err.count("\n") == 1 and "0 <= K < N" in err and "3/2" in err
    code, err = _run([*base, "--model", "mock:1", "--shard", "0/2"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--cache" in err
    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    assert _run([*base, "--model", "mock:1", "--shard", "0/2", "--cache", str(one)], capsys)[0] == 0
    assert _run([*base, "--model", "mock:2", "--shard", "1/2", "--cache", str(two)], capsys)[0] == 0
    code, err = _run([*base, "--model", "mock:1", "--cache", str(one), "--cache", str(two)], capsys)
    assert code == 2 and err.count("\n") == 1 and "different models" in err
    code, err = _run([*base, "--model", "mock:3", "--shard", "0/2", "--cache", str(one)], capsys)
    assert code == 2 and err.count("\n") == 1 and "another model" in err
    code, err = _run(
        [*base, "--model", "mock:1", "--cache", str(one), "--cache", str(tmp_path / "no")], capsys
    )
    assert code == 2 and err.count("\n") == 1 and "no request cache" in err
    assert not (tmp_path / "s" / "_harness_store.json").exists()  # nothing half-written: no run stored


def test_merge_refuses_an_empty_shard_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", "--tasks", "harness_reading_mc", "--limit", "3", "--quiet", "--store", str(tmp_path / "s")]
    done, crashed = tmp_path / "part-0.sqlite", tmp_path / "part-1.sqlite"
    assert _run([*base, "--model", "mock:1", "--shard", "0/2", "--cache", str(done)], capsys)[0] == 0
    # A shard that failed before its first answer leaves a cache with its model's label and no results;
    # merging it would run that shard's whole share on the model.
    with RequestCache(crashed) as cache:
        cache.label(MockAdapter("1").fingerprint, "mock")
    for order in ([done, crashed], [crashed, done]):
        code, err = _run([*base, "--model", "mock:1", *[f"--cache={path}" for path in order]], capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert f"cache {crashed} holds no answers: re-run its shard, or leave it out" in err
    assert not (tmp_path / "s" / "_harness_store.json").exists()  # no run stored, nothing scored
    # A shard run may still start from an empty cache of its own.
    assert _run([*base, "--model", "mock:1", "--shard", "1/2", "--cache", str(crashed)], capsys)[0] == 0
    code, err = _run([*base, "--model", "mock:1", "--cache", str(done), "--cache", str(crashed)], capsys)
    assert code == 0, err
