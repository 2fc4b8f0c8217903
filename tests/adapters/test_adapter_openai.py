"""The `openai` adapter against a scripted fake server (logprobs, retries, failures) and a real one
(`transformers serve` with the tiny test model: generation, and the clear error where logprobs are missing).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness
from harness import runner
from harness.adapters import load_adapter
from harness.adapters.openai import OpenAIAdapter, PartialResultsError, load_openai_adapter
from harness.cache import RequestCache
from harness.cli import main
from harness.errors import HarnessError
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    LoglikelihoodRequest,
    RollingLoglikelihoodRequest,
)
from tests.adapters.fake_openai_server import (
    ALTERNATIVE_LOGPROB,
    FakeOpenAIServer,
    generated_text,
    token_logprob,
    tokenize,
)


def _adapter(server: FakeOpenAIServer, **model_args: str) -> OpenAIAdapter:
    return load_openai_adapter(
        "fake-model", {"base_url": server.base_url, "retry_backoff": "0.001", **model_args}
    )


def _expected(context: str, continuation: str) -> tuple[float, bool, int]:
    """What the adapter must make of the fake server's echo: every token carrying continuation text."""
    text = context + continuation
    total, greedy, count, position = 0.0, True, 0, 0
    for index, token in enumerate(tokenize(text)):
        if position + len(token) > len(context) and index > 0:
            logprob = token_logprob(text[:position], token)
            total, count = total + logprob, count + 1
            greedy = greedy and logprob >= ALTERNATIVE_LOGPROB
        position += len(token)
    return total, greedy, count


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


LL_REQUESTS = [
    LoglikelihoodRequest("The cat sat on the", " hat"),
    LoglikelihoodRequest("Question: capital of France?\nAnswer: ", "Paris is the answer"),
    LoglikelihoodRequest("Q: two plus two\nA:", " four"),
    LoglikelihoodRequest("one", " two three four five"),
]


# -- scoring through echo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scoring", ["auto", "echo"])
def test_loglikelihood_sums_the_continuation_tokens_of_the_prompt_logprobs(scoring: str) -> None:
    with FakeOpenAIServer() as server:
        results = _adapter(server, scoring=scoring).loglikelihood(LL_REQUESTS)
    for request, result in zip(LL_REQUESTS, results, strict=True):
        logprob, greedy, count = _expected(request.context, request.continuation)
        assert result.logprob == pytest.approx(logprob, abs=1e-12)
        assert (result.is_greedy, result.num_tokens) == (greedy, count)
    assert {r.is_greedy for r in results} == {True, False}  # the data exercises both answers
    body = server.posts("/completions")[0]
    if scoring == "auto":  # vLLM's own parameter first: the token's rank says whether it was greedy
        assert (body["prompt_logprobs"], body["max_tokens"], "echo" in body) == (0, 1, False)
    else:
        assert (body["echo"], body["logprobs"], body["max_tokens"]) == (True, 1, 1)


def test_batch_size_sends_several_prompts_per_call_with_equal_results() -> None:
    with FakeOpenAIServer() as server:
        one_by_one = _adapter(server).loglikelihood(LL_REQUESTS)
        batched = _adapter(server, batch_size="3").loglikelihood(LL_REQUESTS)
        prompts = [body["prompt"] for body in server.posts()[len(LL_REQUESTS) :]]
    assert batched == one_by_one
    # Concurrent calls may reach the server in either order.
    assert sorted(len(p) if isinstance(p, list) else 1 for p in prompts) == [1, 3]


def test_rolling_loglikelihood_scores_all_but_the_unconditioned_first_token() -> None:
    text = "A language model assigns a probability to every sequence"
    with FakeOpenAIServer() as server:
        (result,) = _adapter(server).loglikelihood_rolling([RollingLoglikelihoodRequest(text)])
    logprob, _, count = _expected("", text)
    assert (result.logprob, result.num_tokens) == (pytest.approx(logprob, abs=1e-12), len(tokenize(text)) - 1)
    assert count == result.num_tokens


# -- generation ------------------------------------------------------------------------------------------


def test_generation_sends_stops_and_cuts_text_the_server_did_not_stop() -> None:
    stops = ("\n", "zz1", "zz2", "zz3", "zz4")
    request = GenerationRequest("Tell me", GenerationSettings(max_tokens=8, stop=stops))
    with FakeOpenAIServer(honor_stop=False) as server:
        (result,) = _adapter(server).generate([request])
    assert result.text == generated_text("Tell me", 8).split("\n")[0]
    assert result.text.count(" ") == 3 and result.num_tokens > 0
    body = server.posts("/completions")[0]
    assert (body["stop"], body["temperature"], body["max_tokens"]) == (list(stops[:4]), 0.0, 8)


def test_chat_prompts_go_to_chat_completions_and_endpoint_chat_takes_plain_prompts_too() -> None:
    chat = GenerationRequest((ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")))
    plain = GenerationRequest("Hi", GenerationSettings(max_tokens=4))
    with FakeOpenAIServer() as server:
        _adapter(server).generate([chat, plain])
        _adapter(server, endpoint="chat").generate([plain])
        with pytest.raises(HarnessError, match="endpoint=chat cannot score loglikelihood"):
            _adapter(server, endpoint="chat").loglikelihood(LL_REQUESTS[:1])
        chat_bodies = server.posts("/chat/completions")
    assert [m["role"] for m in chat_bodies[0]["messages"]] == ["system", "user"]
    assert chat_bodies[1]["messages"] == [{"role": "user", "content": "Hi"}]
    assert len(server.posts("/v1/completions")) == 1


def test_concurrency_bounds_requests_in_flight() -> None:
    requests = [GenerationRequest(f"prompt {i}", GenerationSettings(max_tokens=2)) for i in range(12)]
    for concurrency in (1, 3):
        with FakeOpenAIServer(delay=0.05) as server:
            results = _adapter(server, concurrency=str(concurrency)).generate(requests)
        assert server.max_in_flight == concurrency
        assert [r.text for r in results] == [generated_text(f"prompt {i}", 2) for i in range(12)]


# -- retries and failures --------------------------------------------------------------------------------


def test_429_and_5xx_are_retried_until_the_server_answers() -> None:
    with FakeOpenAIServer(["429", "500", "503"], retry_after="0") as server:
        results = _adapter(server).loglikelihood(LL_REQUESTS[:1])
    assert results[0].logprob == pytest.approx(
        _expected(LL_REQUESTS[0].context, LL_REQUESTS[0].continuation)[0]
    )
    assert len(server.posts()) == 4


def test_a_server_that_keeps_failing_gives_one_line_after_the_last_retry() -> None:
    with FakeOpenAIServer(["500"] * 5) as server, pytest.raises(HarnessError) as caught:
        _adapter(server, max_retries="2").generate([GenerationRequest("x")])
    assert "after 3 attempts" in str(caught.value) and "HTTP 500: scripted 500" in str(caught.value)
    assert "\n" not in str(caught.value) and len(server.posts()) == 3


def test_slow_replies_time_out_and_are_retried() -> None:
    with FakeOpenAIServer(["slow"], slow_seconds=1.5) as server:
        started = time.perf_counter()
        (result,) = _adapter(server, timeout="0.2").generate([GenerationRequest("x")])
        # The slow reply was given up on (a retry got the answer) rather than waited for.
        assert result.text and len(server.posts()) == 2
        assert time.perf_counter() - started < 1.5
        server.script.append("slow")
        with pytest.raises(HarnessError, match=r"no reply within 0\.2 s"):
            _adapter(server, timeout="0.2", max_retries="0").generate([GenerationRequest("x")])


def test_a_dropped_connection_is_retried() -> None:
    with FakeOpenAIServer(["drop"]) as server:
        (result,) = _adapter(server).generate([GenerationRequest("x", GenerationSettings(max_tokens=3))])
    assert result.text == generated_text("x", 3) and len(server.posts()) == 2


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("malformed", "/completions returned malformed JSON"),
        ("nologprobs", "does not return prompt logprobs .* cannot serve loglikelihood requests"),
        ("401", "rejected the API key \\(HTTP 401: scripted 401\\)"),
    ],
)
def test_bad_replies_are_one_clear_line_without_retries(action: str, message: str) -> None:
    with FakeOpenAIServer([action] * 2) as server, pytest.raises(HarnessError, match=message) as caught:
        _adapter(server).loglikelihood(LL_REQUESTS[:1])
    assert str(caught.value).startswith(f"openai adapter ({server.base_url}, model fake-model): ")
    # Without prompt logprobs, echo is tried as well; the other failures end the call at once.
    assert "\n" not in str(caught.value) and len(server.posts()) == (2 if action == "nologprobs" else 1)


def test_a_failure_reports_the_requests_that_had_finished() -> None:
    """What the runner needs to cache the finished part of a chunk (see PartialResultsError)."""
    requests = [GenerationRequest(f"p{i}", GenerationSettings(max_tokens=2)) for i in range(6)]
    with FakeOpenAIServer(["ok", "ok", "401"]) as server, pytest.raises(PartialResultsError) as caught:
        _adapter(server, concurrency="1").generate(requests)
    assert len(server.posts()) == 3  # the queued requests were not sent after the failure
    expected = {i: GenerationResult(generated_text(f"p{i}", 2), 2) for i in (0, 1)}
    assert caught.value.completed == expected


def test_an_unreachable_server_is_one_clear_error_after_its_retries(refused_port: int) -> None:
    # A refused connection is retried (a server may be restarting), then reported in one line.
    arguments = {
        "base_url": f"http://127.0.0.1:{refused_port}/v1",
        "max_retries": "2",
        "retry_backoff": "0.01",
    }
    adapter = load_openai_adapter("m", arguments)
    with pytest.raises(HarnessError, match=r"after 3 attempts.*cannot reach the server"):
        adapter.generate([GenerationRequest("x")])


def test_base_url_and_key_come_from_arguments_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(api_key="sk-right") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url.removesuffix("/v1"))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
        load_adapter("openai:m").generate([GenerationRequest("x")])
        with pytest.raises(HarnessError, match="rejected the API key"):
            load_adapter("openai:m", {"api_key": "sk-wrong"}).generate([GenerationRequest("x")])
    assert [auth for _, _, auth in server.requests] == ["Bearer sk-right", "Bearer sk-wrong"]


@pytest.mark.parametrize(
    ("target", "model_args", "message"),
    [
        ("m", {"base_url": "http://h/v1", "temprature": "1"}, "unknown --model-args key 'temprature'"),
        ("m", {}, "no server given"),
        ("m", {"base_url": "ftp://h"}, "must be an http"),
        ("m", {"base_url": "http://h", "concurrency": "0"}, "concurrency must be a number ≥ 1, not '0'"),
        ("m", {"base_url": "http://h", "timeout": "soon"}, "timeout must be a number"),
        ("m", {"base_url": "http://h", "endpoint": "edits"}, "endpoint must be auto or chat"),
        ("", {"base_url": "http://h"}, "needs a model name"),
    ],
)
def test_bad_settings_are_refused_before_any_request(
    target: str, model_args: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(HarnessError, match=message):
        load_adapter(f"openai:{target}", model_args)


def test_fingerprint_follows_server_model_and_revision_but_not_key_or_concurrency() -> None:
    def fingerprint(model: str = "m", **args: str) -> str:
        return load_openai_adapter(model, {"base_url": "http://h:1/v1", **args}).fingerprint

    base = fingerprint()
    assert (
        base
        == fingerprint(api_key="k", concurrency="9", batch_size="auto")
        == load_openai_adapter("m", {"base_url": "http://h:1"}).fingerprint
    )
    assert len({base, fingerprint("m2"), fingerprint(revision="r2"), fingerprint(base_url="http://h:2")}) == 4
    assert "sk-secret" not in str(
        load_openai_adapter("m", {"base_url": "http://h", "api_key": "sk-secret"}).provenance()
    )


# -- with the runner: the sample cache ------------------------------------------------------------------


def test_rerunning_an_unchanged_model_answers_from_the_cache(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        args = {"base_url": server.base_url}
        tasks = ["harness_reading_mc", "harness_facts_qa"]
        first = harness.evaluate("openai:fake-model", tasks, model_args=args, limit=3, store=tmp_path)
        served = len(server.posts())
        second = harness.evaluate("openai:fake-model", tasks, model_args=args, limit=3, store=tmp_path)
    assert served == 3 * 4 + 3 and len(server.posts()) == served
    assert second.request_stats.model_requests == 0
    assert [s.value for s in first.scores] == [s.value for s in second.scores]


def test_finished_samples_stay_cached_when_the_server_fails_midway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "CHUNK_REQUESTS", 4)  # one multiple-choice item per chunk
    argv = ["run", "--model", "openai:fake-model", "--tasks", "harness_reading_mc", "--limit", "4"]
    argv += ["--store", str(tmp_path), "--quiet", "--model-args"]
    with FakeOpenAIServer(["ok"] * 8 + ["401"]) as server:
        assert main([*argv, f"base_url={server.base_url}", "concurrency=1"]) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        with RequestCache(tmp_path / "cache.sqlite") as cache:
            cached = cache.count(_adapter(server).fingerprint)
        failed_run_posts = len(server.posts())
        assert main([*argv, f"base_url={server.base_url}"]) == 0
    assert error.startswith("harness: error: openai adapter (") and "rejected the API key" in error
    # Two finished chunks were cached; the resumed run asks only for the other two.
    assert (failed_run_posts, cached, len(server.posts()) - failed_run_posts) == (9, 8, 8)


# -- a real OpenAI-compatible server: `transformers serve` -----------------------------------------------


ServeProcess = tuple[subprocess.Popen[bytes], int, Path]


@pytest.fixture(scope="module", autouse=True)
def served_model_processes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServeProcess] | None]:
    """`transformers serve` with the tiny model on free loopback ports (two when a pool test is
    selected), always terminated.

    They start with this module's first test and boot (about 20 s) while the fake-server tests run,
    unless no selected test needs them.
    """
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent))
    needs = [getattr(item, "fixturenames", ()) for item in request.session.items]
    count = 2 if any("served_pool" in names for names in needs) else 1
    needed = any("served_model" in names or "served_pool" in names for names in needs)
    serving = importlib.util.find_spec("fastapi") and importlib.util.find_spec("uvicorn")
    if executable is None or not serving or not needed:
        yield None  # a test that needs the server then fails in `served_model`, naming what is missing
        return
    tiny_model_dir: Path = request.getfixturevalue("tiny_model_dir")
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1"}
    processes: list[ServeProcess] = []
    try:
        for _ in range(count):
            port = _free_port()
            command = [executable, "serve", "--host", "127.0.0.1", "--port", str(port), str(tiny_model_dir)]
            log_path = tmp_path_factory.mktemp("serve") / "serve.log"
            # A file, not a pipe: an unread pipe would fill up and stall the server.
            with log_path.open("wb") as log:
                process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
            processes.append((process, port, log_path))
        yield processes
    finally:
        for process, _, _ in processes:
            process.terminate()
        for process, _, _ in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(served: ServeProcess) -> str:
    """The server's base URL, once it answers its health check."""
    process, port, log_path = served
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return f"http://127.0.0.1:{port}/v1"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"transformers serve did not start: {log_path.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.25)


@pytest.fixture(scope="module")
def served_model(served_model_processes: list[ServeProcess] | None) -> str:
    """The first server's base URL, once it answers."""
    if served_model_processes is None:
        pytest.fail("transformers[serving] (fastapi, uvicorn) is a dev dependency; install '.[dev]'")
    return _wait_until_serving(served_model_processes[0])


@pytest.fixture(scope="module")
def served_pool(served_model_processes: list[ServeProcess] | None) -> list[str]:
    """Both servers' base URLs, once they answer."""
    if served_model_processes is None or len(served_model_processes) < 2:
        pytest.fail("transformers[serving] (fastapi, uvicorn) is a dev dependency; install '.[dev]'")
    return [_wait_until_serving(served) for served in served_model_processes]


def test_generation_through_transformers_serve_equals_the_hf_adapter(
    served_model: str, tiny_model_dir: Path
) -> None:
    requests = [
        GenerationRequest("The capital of France is", GenerationSettings(max_tokens=12)),
        GenerationRequest(
            "Question: what is water?\nAnswer:", GenerationSettings(max_tokens=20, stop=("\n", "."))
        ),
        GenerationRequest((ChatMessage("user", "Hello there"),), GenerationSettings(max_tokens=10)),
    ]
    served = load_adapter(f"openai:{tiny_model_dir}", {"base_url": served_model, "concurrency": "3"})
    local = load_adapter(f"hf:{tiny_model_dir}", {"batch_size": "1"})
    ours, theirs = served.generate(requests), local.generate(requests)
    assert [r.text for r in ours] == [r.text for r in theirs]
    assert ours[0].num_tokens == 12


def test_transformers_serve_without_logprobs_is_one_clear_error(
    served_model: str, tiny_model_dir: Path
) -> None:
    adapter = load_adapter(f"openai:{tiny_model_dir}", {"base_url": served_model})
    with pytest.raises(HarnessError, match="does not return prompt logprobs") as caught:
        adapter.loglikelihood(LL_REQUESTS[:2])
    assert "\n" not in str(caught.value)
    with pytest.raises(HarnessError, match="HTTP 400: Server is pinned to"):
        load_adapter("openai:another-model", {"base_url": served_model}).generate([GenerationRequest("x")])


def test_a_pool_of_two_transformers_serve_processes_equals_the_hf_adapter(
    served_pool: list[str], tiny_model_dir: Path
) -> None:
    requests = [
        GenerationRequest(
            f"Question {i}: what is the capital of France?\nAnswer:", GenerationSettings(max_tokens=8)
        )
        for i in range(6)
    ]
    pool = load_adapter(f"openai:{tiny_model_dir}", {"base_url": ",".join(served_pool), "concurrency": "1"})
    local = load_adapter(f"hf:{tiny_model_dir}", {"batch_size": "1"})
    assert [r.text for r in pool.generate(requests)] == [r.text for r in local.generate(requests)]
    served = [cost["requests"] for cost in pool.provenance()["endpoints"]]
    assert sum(served) == len(requests) and min(served) >= 1  # the faster server may take more
