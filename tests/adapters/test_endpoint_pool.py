"""The `openai` adapter over a pool of endpoints: throughput, per-endpoint limits, failover when one dies.

The servers are `FakeOpenAIServer`s on loopback with a fixed 200 ms latency, in this process or (to be
killed mid-run) in processes of their own.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

import harness
from harness.adapters.openai import OpenAIAdapter, load_openai_adapter
from harness.errors import HarnessError
from harness.requests import GenerationRequest, GenerationResult, GenerationSettings
from tests.adapters.fake_openai_server import FakeOpenAIServer, generated_text

LATENCY = 0.2
REPOSITORY = Path(__file__).resolve().parents[2]


def _pool(*base_urls: str, **model_args: str) -> OpenAIAdapter:
    args = {"base_url": ",".join(base_urls), "retry_backoff": "0.001", **model_args}
    return load_openai_adapter("fake-model", args)


@contextmanager
def _server_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A fake server in a process of its own, so that killing it drops its connections as a crash does."""
    command = [sys.executable, "-m", "tests.adapters.fake_openai_server", "--delay", str(LATENCY)]
    process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait()


def test_two_endpoints_give_nearly_twice_the_throughput_of_one() -> None:
    requests = [GenerationRequest(f"prompt {i}", GenerationSettings(max_tokens=3)) for i in range(32)]
    with FakeOpenAIServer(delay=LATENCY) as first, FakeOpenAIServer(delay=LATENCY) as second:
        started = time.perf_counter()
        alone = _pool(first.base_url, concurrency="4").generate(requests)
        one_server = time.perf_counter() - started
        first.max_in_flight = 0
        adapter = _pool(first.base_url, second.base_url, concurrency="4")
        started = time.perf_counter()
        pooled = adapter.generate(requests)
        two_servers = time.perf_counter() - started
    assert pooled == alone == [GenerationResult(generated_text(f"prompt {i}", 3), 3) for i in range(32)]
    # The per-endpoint limit holds, and the least-loaded choice spreads the work evenly.
    assert first.max_in_flight == second.max_in_flight == 4
    served = [cost["requests"] for cost in adapter.provenance()["endpoints"]]
    assert served == [16, 16]
    print(f"one endpoint {one_server:.2f} s, two {two_servers:.2f} s: {one_server / two_servers:.2f}x")
    assert one_server / two_servers >= 1.8, (one_server, two_servers)


def _evaluate(model: str | OpenAIAdapter, **model_args: str) -> harness.EvaluationReport:
    tasks = ["harness_reading_mc", "harness_facts_qa"]
    return harness.evaluate(
        model, tasks, model_args=model_args, limit=10, write=False, use_cache=False, bootstrap_resamples=0
    )


def test_a_server_killed_mid_run_leaves_every_answer_and_equal_scores() -> None:
    with FakeOpenAIServer() as reference:
        expected = _evaluate("openai:fake-model", base_url=reference.base_url)
    with ExitStack() as stack:
        (doomed, doomed_url), (_, survivor_url) = (stack.enter_context(_server_process()) for _ in range(2))
        adapter = _pool(doomed_url, survivor_url, concurrency="2")
        killer = threading.Timer(3 * LATENCY, doomed.kill)
        killer.start()
        started = time.perf_counter()
        results = _evaluate(adapter)
        elapsed = time.perf_counter() - started
        killer.join()
    assert elapsed > 3 * LATENCY  # the kill landed mid-run
    assert [(s.task, s.metric, s.value) for s in results.scores] == [
        (s.task, s.metric, s.value) for s in expected.scores
    ]
    doomed_cost, survivor_cost = adapter.provenance()["endpoints"]
    assert doomed_cost["failures"] >= 1 and doomed_cost["requests"] >= 2
    assert survivor_cost["failures"] == 0
    assert survivor_cost["requests"] > doomed_cost["requests"]


def test_when_every_endpoint_is_gone_the_error_is_one_line() -> None:
    with _server_process() as (first, first_url), _server_process() as (second, second_url):
        first.kill()
        second.kill()
        first.wait()
        second.wait()
        with pytest.raises(HarnessError, match="cannot reach the server") as caught:
            _pool(first_url, second_url).generate([GenerationRequest("x")])
    assert "\n" not in str(caught.value)


def test_base_urls_are_a_comma_separated_pool_with_one_fingerprint_in_any_order() -> None:
    forward = _pool("http://a:1/v1", "http://b:2")
    backward = _pool("http://b:2/v1", "http://a:1/v1")
    assert forward.settings.base_urls == ("http://a:1/v1", "http://b:2/v1")
    assert forward.fingerprint == backward.fingerprint != _pool("http://a:1/v1").fingerprint
