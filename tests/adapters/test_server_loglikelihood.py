"""Loglikelihoods from a server's prompt logprobs equal the hf adapter's on the same (real, tiny) model.

The server is `TinyModelServer`: the tiny test model behind /v1/completions, answering vLLM's
`prompt_logprobs` parameter and completions echo the way vLLM's OpenAI server does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import harness
from harness.adapters import ModelAdapter, load_adapter
from harness.errors import HarnessError
from harness.requests import LoglikelihoodRequest, RollingLoglikelihoodRequest
from tests.adapters.tiny_model_server import TinyModelServer

REQUESTS = [
    LoglikelihoodRequest("The capital of France is", " Paris"),
    LoglikelihoodRequest("Question: what do bakers make?\nAnswer:", " bread every morning"),
    LoglikelihoodRequest("Water boils at one hundred ", "degrees Celsius"),
    LoglikelihoodRequest("Café au lait and ", "smørrebrød 🙂"),
    LoglikelihoodRequest("2 + 2 =", " 4"),
]


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[TinyModelServer]:
    with TinyModelServer(tiny_model_dir) as running:
        yield running


def _served(server: TinyModelServer, **model_args: str) -> ModelAdapter:
    return load_adapter(f"openai:{server.model_name}", {"base_url": server.base_url, **model_args})


@pytest.mark.parametrize("scoring", ["auto", "echo"])
def test_continuation_logprobs_equal_the_hf_adapter(
    server: TinyModelServer, tiny_model_dir: Path, scoring: str
) -> None:
    local = load_adapter(f"hf:{tiny_model_dir}", {"batch_size": "2"}).loglikelihood(REQUESTS)
    served = _served(server, scoring=scoring, batch_size="2").loglikelihood(REQUESTS)
    for ours, theirs in zip(served, local, strict=True):
        assert ours.logprob == pytest.approx(theirs.logprob, abs=1e-4)
        assert (ours.is_greedy, ours.num_tokens) == (theirs.is_greedy, theirs.num_tokens)
    sent = server.bodies[-1]
    assert ("prompt_logprobs" in sent, sent.get("echo", False)) == (scoring == "auto", scoring == "echo")


def test_multiple_choice_accuracy_equals_the_hf_adapter(
    server: TinyModelServer, tiny_model_dir: Path, tmp_path: Path
) -> None:
    def scores(model: str, **model_args: str) -> dict[str, float]:
        results = harness.evaluate(
            model,
            ["harness_reading_mc"],
            model_args=model_args,
            limit=12,
            write=False,
            use_cache=False,
            bootstrap_resamples=0,
        )
        return {s.metric: s.value for s in results.scores if s.metric in ("acc", "acc_norm")}

    local = scores(f"hf:{tiny_model_dir}", batch_size="4")
    served = scores(f"openai:{server.model_name}", base_url=server.base_url, concurrency="2")
    assert set(local) == {"acc", "acc_norm"}
    for metric, value in local.items():
        assert served[metric] == pytest.approx(value, abs=1e-4)


def test_rolling_loglikelihood_agrees_between_prompt_logprobs_and_echo(server: TinyModelServer) -> None:
    texts = [RollingLoglikelihoodRequest("A language model assigns a probability to every sequence.")]
    through_prompt_logprobs = _served(server, scoring="prompt_logprobs").loglikelihood_rolling(texts)
    through_echo = _served(server, scoring="echo").loglikelihood_rolling(texts)
    assert through_prompt_logprobs[0].logprob == pytest.approx(through_echo[0].logprob, abs=1e-9)
    assert through_prompt_logprobs[0].num_tokens == through_echo[0].num_tokens > 5


def test_a_server_without_prompt_logprobs_falls_back_to_echo(tiny_model_dir: Path) -> None:
    with TinyModelServer(tiny_model_dir, prompt_logprobs=False) as strict:
        adapter = _served(strict)
        first = adapter.loglikelihood(REQUESTS[:2])
        second = adapter.loglikelihood(REQUESTS[:2])
        # One refused probe, then echo for good (two calls of two requests each).
        assert ["prompt_logprobs" in body for body in strict.bodies] == [True] + [False] * 4
    assert first == second
    assert adapter.provenance()["scoring_used"] == "echo"


def test_a_server_without_either_capability_is_one_line_naming_it(tiny_model_dir: Path) -> None:
    with TinyModelServer(tiny_model_dir, prompt_logprobs=False, echo=False) as bare:
        with pytest.raises(HarnessError) as caught:
            _served(bare).loglikelihood(REQUESTS[:1])
        with pytest.raises(
            HarnessError, match="HTTP 400: Unrecognized request argument supplied: prompt_logprobs"
        ):
            _served(bare, scoring="prompt_logprobs").loglikelihood(REQUESTS[:1])
    message = str(caught.value)
    assert "\n" not in message and "cannot serve loglikelihood requests" in message
    assert "prompt_logprobs" in message and "echo=true" in message and "Unrecognized" in message
