"""The `openai` adapter over a pool of endpoints: throughput, per-endpoint limits, failover when one dies.

The servers are `FakeOpenAIServer`s on loopback with a fixed 200 ms latency, in this process or (to be
killed mid-run) in processes of their own. Wall-clock times are printed (`-s`) but asserted only loosely: what
the tests check is what makes the times, such as how many requests were in flight at once.
"""

from __future__ import annotations

import socket
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


def _peak_in_flight(*servers: FakeOpenAIServer) -> int:
    """The most requests the servers were answering at the same moment, all together."""
    # A request that ends at the instant another starts is not counted as overlapping it (-1 sorts first).
    spans = [span for server in servers for span in server.spans]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def test_two_endpoints_give_nearly_twice_the_throughput_of_one() -> None:
    requests = [GenerationRequest(f"prompt {i}", GenerationSettings(max_tokens=3)) for i in range(32)]
    with FakeOpenAIServer(delay=LATENCY) as first, FakeOpenAIServer(delay=LATENCY) as second:
        started = time.perf_counter()
        alone = _pool(first.base_url, concurrency="4").generate(requests)
        one_server = time.perf_counter() - started
        first.max_in_flight = 0
        first.spans.clear()
        adapter = _pool(first.base_url, second.base_url, concurrency="4")
        started = time.perf_counter()
        pooled = adapter.generate(requests)
        two_servers = time.perf_counter() - started
    assert pooled == alone == [GenerationResult(generated_text(f"prompt {i}", 3), 3) for i in range(32)]
    # Throughput doubles because both servers work at once, each up to the per-endpoint limit: the limit
    # holds and is reached on each, and the pool as a whole had twice the limit in flight.
    assert first.max_in_flight == second.max_in_flight == 4
    assert _peak_in_flight(first, second) == 8
    # The least-loaded choice spreads the work; the exact split follows which server answers faster.
    served = [cost["requests"] for cost in adapter.provenance()["endpoints"]]
    assert sum(served) == 32 and min(served) >= 8, served
    # About 2x on an idle machine (the README's figure); the bound leaves room for a loaded one.
    print(f"one endpoint {one_server:.2f} s, two {two_servers:.2f} s: {one_server / two_servers:.2f}x")
    assert two_servers < 0.8 * one_server, (one_server, two_servers)


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
        finished = threading.Event()

        def kill_after_four_answers() -> None:
            # Killed by progress, not by the clock: the run has ~50 requests, so after the doomed server's
            # fourth answer it still has work, however slowly a loaded machine runs the test.
            while not finished.wait(0.01):
                cost = adapter.provenance()["endpoints"][0]
                if cost["requests"] - cost["failures"] >= 6:  # 4 answered, 2 on the wire (concurrency 2)
                    doomed.kill()
                    return

        killer = threading.Thread(target=kill_after_four_answers)
        killer.start()
        try:
            results = _evaluate(adapter)
        finally:
            finished.set()
            killer.join()
    assert doomed.poll() is not None  # the kill landed mid-run
    assert [(s.task, s.metric, s.value) for s in results.scores] == [
        (s.task, s.metric, s.value) for s in expected.scores
    ]
    doomed_cost, survivor_cost = adapter.provenance()["endpoints"]
    assert doomed_cost["failures"] >= 1 and doomed_cost["requests"] >= 6
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


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A port that is bound but never listens: every connection to it is refused, and no one else takes it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def _listen_once_refused(server: FakeOpenAIServer, adapter: OpenAIAdapter, stop: threading.Event) -> None:
    """Opens `server` about a second after the pool was first refused by it, as a restarted server does."""
    while not stop.wait(0.01):
        if adapter.provenance()["endpoints"][-1]["failures"]:
            if not stop.wait(1.0):
                server.listen()
            return


@pytest.mark.parametrize("others", ["none", "out"])
def test_the_last_endpoint_is_retried_while_its_server_starts(refusing_url: str, others: str) -> None:
    """A lone server that is restarting, or the last healthy one of a pool whose others are out for 30 s,
    refuses connections for a while: the run waits for it with backoff instead of ending."""
    requests = [GenerationRequest(f"prompt {i}", GenerationSettings(max_tokens=3)) for i in range(6)]
    expected = [GenerationResult(generated_text(f"prompt {i}", 3), 3) for i in range(6)]
    with FakeOpenAIServer(listening=False) as late:
        # Backoff of 0.05-0.1 s doubling, 8 retries: at least 12 s of waiting, ample for a 1 s restart.
        urls = [late.base_url] if others == "none" else [refusing_url, late.base_url]
        adapter = _pool(*urls, retry_backoff="0.1", max_retries="8", concurrency="2")
        stop = threading.Event()
        opener = threading.Thread(target=_listen_once_refused, args=(late, adapter, stop))
        opener.start()
        try:
            if others == "out":
                # One request at a time, so the refusing member is taken out before the late one is
                # tried: the first request fails over, and then the late server is the last healthy one.
                results = adapter.generate(requests[:1]) + adapter.generate(requests[1:])
            else:
                results = adapter.generate(requests)  # every request in flight waits for the restart
        finally:
            stop.set()
            opener.join()
    assert results == expected
    assert sorted(body["prompt"] for body in late.posts()) == sorted(r.prompt for r in requests)
    costs = adapter.provenance()["endpoints"]
    assert costs[-1]["failures"] >= 1  # refused while starting, then served
    if others == "out":
        assert costs[0]["requests"] == costs[0]["failures"] == 1  # out after its refusal, not tried again


def test_a_server_that_never_comes_up_fails_with_one_line_after_the_retries(refusing_url: str) -> None:
    adapter = _pool(refusing_url, retry_backoff="0.05", max_retries="3")
    started = time.perf_counter()
    with pytest.raises(HarnessError, match="after 4 attempts") as caught:
        adapter.generate([GenerationRequest("x"), GenerationRequest("y")])
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert "cannot reach the server (connection refused)" in message and "\n" not in message
    # Backed off between attempts (at least half of 0.05 + 0.1 + 0.2 s), and nothing waits on: the retries
    # sum to at most 0.35 s, so 30 s only catches a hang.
    assert 0.175 <= elapsed < 30, elapsed
    assert adapter.provenance()["endpoints"][0]["failures"] >= 4


def test_base_urls_are_a_comma_separated_pool_with_one_fingerprint_in_any_order() -> None:
    forward = _pool("http://a:1/v1", "http://b:2")
    backward = _pool("http://b:2/v1", "http://a:1/v1")
    assert forward.settings.base_urls == ("http://a:1/v1", "http://b:2/v1")
    assert forward.fingerprint == backward.fingerprint != _pool("http://a:1/v1").fingerprint
