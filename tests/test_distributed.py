"""One `harness run` under torchrun: every rank serves its share, rank 0 stores one run and shows one bar;
what fails on rank 0 alone stops every rank."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.adapters.mock import MockAdapter
from harness.api import evaluate
from harness.cache import RequestCache
from harness.distributed import DistributedAdapter, RankZeroCache, World, on_rank_zero
from harness.errors import HarnessError
from harness.requests import LoglikelihoodRequest, LoglikelihoodResult
from harness.store import ResultStore

T = TypeVar("T")

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


def test_torchrun_cache_failing_on_rank_zero_stops_both_ranks(tmp_path: Path, tiny_model_dir: Path) -> None:
    # Only rank 0 opens the cache. Its failure must reach rank 1 through the broadcast rank 1 waits in:
    # otherwise rank 1 waits until rank 0's process is gone (forever, where rank 0 lives on, as in a
    # training loop) and then dies of a lost connection. The timeout turns a hang into a failure.
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not an SQLite database\n" * 64)
    logs = tmp_path / "logs"
    command = [
        *_torchrun(),
        "--redirects",
        "3",
        "--log-dir",
        str(logs),
        "-m",
        "harness.cli",
        "run",
        "--model",
        f"hf:{tiny_model_dir}",
        "--tasks",
        "harness_reading_mc",
        "--limit",
        "2",
        "--store",
        str(tmp_path / "store"),
        "--cache",
        str(corrupt),
        "--quiet",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode != 0
    # torchrun's summary of failed ranks. Both ranks raise the same error and exit 2; whichever exits
    # first, the launcher may stop the other with a signal before it does (exit code -15).
    exits = dict(re.findall(r"rank\s*: (\d+) \(local_rank.*\n\s*exitcode\s*: (-?\d+)", finished.stderr))
    assert "0" not in exits.values() and "2" in exits.values(), finished.stderr[-3000:]

    def rank_file(rank: int, name: str) -> str:
        (path,) = logs.glob(f"*/attempt_0/{rank}/{name}")
        return path.read_text()

    for rank in (0, 1):
        if exits.get(str(rank), "2") != "2":
            continue  # stopped by the launcher after the other rank's exit
        errors = [
            line for line in rank_file(rank, "stderr.log").splitlines() if line.startswith("harness: error:")
        ]
        # Rank 1 never opens the cache: its line is rank 0's error, received through the broadcast.
        assert len(errors) == 1 and "corrupt" in errors[0] and str(corrupt) in errors[0], rank_file(
            rank, "stderr.log"
        )
    assert not (tmp_path / "store" / "_harness_store.json").exists()


class _FakeWorld(World):
    """One rank of a two-rank world without a process group: `sent` holds what rank 0 broadcast, and
    a non-zero rank receives `received` as rank 0's value."""

    def __init__(self, rank: int, received: object = None) -> None:
        super().__init__(rank, 2)
        object.__setattr__(self, "sent", [])
        object.__setattr__(self, "received", received)

    def broadcast(self, value: T) -> T:
        self.sent.append(value)  # type: ignore[attr-defined]
        return value if self.is_main else self.received  # type: ignore[attr-defined]

    def gather(self, value: T) -> list[T]:
        return [value, value]


def test_rank_zero_cache_failures_reach_every_rank(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"not a database\n" * 64)
    request = LoglikelihoodRequest("Context", " answer")
    result = LoglikelihoodResult(-1.0, True, 1)
    main = _FakeWorld(0)
    cache = RankZeroCache(RequestCache(corrupt), main)
    with pytest.raises(HarnessError, match="corrupt") as raised:
        cache.lookup("model", [request])
    # Rank 0 broadcast its failure instead of raising before the collective.
    assert main.sent == [(False, str(raised.value))]  # type: ignore[attr-defined]
    for action in (lambda: cache.store("model", [request], [result]), lambda: cache.count("model")):
        with pytest.raises(HarnessError, match="corrupt"):
            action()
    assert [ok for ok, _ in main.sent] == [False, False, False]  # type: ignore[attr-defined]

    class Unopenable(RequestCache):
        def lookup(self, fingerprint: str, requests: Any) -> Any:
            raise AssertionError("only rank 0 opens the cache")

    # Another rank raises rank 0's message, whatever the error was there, without touching the cache.
    other = RankZeroCache(Unopenable(tmp_path / "absent.sqlite"), _FakeWorld(1, (False, "disk full")))
    with pytest.raises(HarnessError, match=r"^disk full$"):
        other.lookup("model", [request])
    with pytest.raises(HarnessError, match=r"^disk full$"):
        other.store("model", [request], [result])
    # A non-HarnessError on rank 0 is broadcast too, named by its type.
    with pytest.raises(HarnessError, match=r"^ZeroDivisionError: "):
        on_rank_zero(_FakeWorld(0), lambda: 1 / 0)


def test_distributed_adapter_fingerprint_failure_is_gathered_not_raised_alone() -> None:
    class Broken:
        name = "broken"

        @property
        def fingerprint(self) -> str:
            raise OSError("weights unreadable")

    with pytest.raises(HarnessError, match=r"fingerprint failed on rank 0: OSError: weights unreadable"):
        DistributedAdapter(Broken(), _FakeWorld(0))  # type: ignore[arg-type]
    assert DistributedAdapter(MockAdapter(), _FakeWorld(1)).fingerprint == MockAdapter().fingerprint


def test_a_replicated_adapter_serves_every_request_on_every_rank_and_keeps_rank_zero_s_answers() -> None:
    """For a model sharded across the ranks: each rank's fingerprint hashed its own shard, so the
    model's is all of them together; rank 1 serves everything itself and ends with rank 0's answers."""
    served: list[int] = []

    class Counting(MockAdapter):
        def loglikelihood(self, requests: Any, progress: Any = None) -> Any:
            served.append(len(requests))
            return super().loglikelihood(requests, progress)

    requests = [LoglikelihoodRequest(f"Context {i}", " answer") for i in range(5)]
    rank_zero_answers = [LoglikelihoodResult(-float(i), False, 1) for i in range(5)]
    replicated = DistributedAdapter(Counting(), _FakeWorld(1, rank_zero_answers), replicated=True)
    assert replicated.fingerprint != MockAdapter().fingerprint  # the hash of both ranks' fingerprints
    assert replicated.provenance()["sharded_model"] is True
    assert replicated.loglikelihood(requests) == rank_zero_answers
    assert served == [5]  # all five requests, not a share of them
    sharing = DistributedAdapter(Counting(), _FakeWorld(1, rank_zero_answers))
    assert sharing.fingerprint == MockAdapter().fingerprint and "sharded_model" not in sharing.provenance()
