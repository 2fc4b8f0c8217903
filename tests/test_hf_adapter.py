"""The hf adapter on a tiny random-weight model: shared-context scoring, rolling windows, generation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import harness
from harness.adapters import load_adapter, wrap_model
from harness.adapters.hf import HFAdapter, _rolling_windows
from harness.errors import HarnessError
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationSettings,
    LoglikelihoodRequest,
    RollingLoglikelihoodRequest,
)


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: Path) -> HFAdapter:
    loaded = load_adapter(f"hf:{tiny_model_dir}", {"batch_size": "3"})
    assert isinstance(loaded, HFAdapter)
    return loaded


def _direct_logprob(
    adapter: HFAdapter, context_ids: tuple[int, ...], continuation_ids: tuple[int, ...]
) -> float:
    """The reference: one full sequence through the model, log-softmax at every continuation position."""
    sequence = torch.tensor([list(context_ids + continuation_ids)])
    with torch.inference_mode():
        logits = adapter.model(input_ids=sequence).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    start = len(context_ids)
    return sum(float(log_probs[start + i - 1, token]) for i, token in enumerate(continuation_ids))


def test_shared_context_scores_equal_full_sequences(adapter: HFAdapter) -> None:
    contexts = ["The capital of France is", "Water boils at", "A fox", "x"]
    options = [" Paris", " one hundred degrees", " jumps over the lazy dog", " Paris", "!"]
    requests = [LoglikelihoodRequest(c, o) for c in contexts for o in options]
    results = adapter.loglikelihood(requests)
    for request, result in zip(requests, results, strict=True):
        context_ids, continuation_ids = adapter.encode_pair(request.context, request.continuation)
        assert result.logprob == pytest.approx(
            _direct_logprob(adapter, context_ids, continuation_ids), rel=1e-5
        )
        assert result.num_tokens == len(continuation_ids)


def test_empty_context_uses_the_prefix_token(adapter: HFAdapter) -> None:
    (result,) = adapter.loglikelihood([LoglikelihoodRequest("", "Hello world")])
    context_ids, continuation_ids = adapter.encode_pair("", "Hello world")
    assert context_ids == (adapter.prefix_token_id,)
    assert result.logprob == pytest.approx(_direct_logprob(adapter, context_ids, continuation_ids), rel=1e-5)


def test_trailing_context_space_moves_into_the_continuation(adapter: HFAdapter) -> None:
    assert adapter.encode_pair("Answer: ", "yes") == adapter.encode_pair("Answer:", " yes")


def test_rolling_windows_cover_every_token_once() -> None:
    tokens = list(range(100, 400))
    windows = _rolling_windows(tokens, prefix_token=1, max_length=128)
    predicted = [t for _, targets in windows for t in targets]
    assert predicted == tokens
    assert all(len(context) <= 128 for context, _ in windows)
    assert windows[0][0][0] == 1


def test_rolling_perplexity_over_several_windows(adapter: HFAdapter) -> None:
    text = " ".join(f"word{i} and more words" for i in range(120))
    tokens = adapter.encode(text)
    assert len(tokens) > 2 * adapter.max_length
    (result,) = adapter.loglikelihood_rolling([RollingLoglikelihoodRequest(text)])
    assert result.num_tokens == len(tokens)
    expected = 0.0
    for context, targets in _rolling_windows(tokens, adapter.prefix_token_id, adapter.max_length):
        inputs = context[: len(context) - (len(targets) - 1)]
        expected += _direct_logprob(adapter, inputs, targets)
    assert result.logprob == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(result.logprob) and result.logprob < 0


def test_long_continuations_are_left_truncated(adapter: HFAdapter) -> None:
    context = "once upon a time " * 60
    (result,) = adapter.loglikelihood([LoglikelihoodRequest(context, " the end")])
    assert math.isfinite(result.logprob)


def test_generation_stops_at_stop_sequences(adapter: HFAdapter) -> None:
    settings = GenerationSettings(max_tokens=12, stop=("e",))
    results = adapter.generate([GenerationRequest("The quick brown", settings)] * 2)
    assert results[0] == results[1]
    assert "e" not in results[0].text
    assert results[0].num_tokens <= 12


def test_chat_prompts_use_the_chat_template(adapter: HFAdapter) -> None:
    rendered = adapter.render_prompt((ChatMessage("user", "hello"),))
    assert rendered.startswith("<|im_start|>user\nhello") and rendered.endswith("assistant\n")


def test_in_memory_model_matches_loaded_model(tiny_model_dir: Path, adapter: HFAdapter) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    wrapped = wrap_model(model, tokenizer, name="loop")
    request = LoglikelihoodRequest("The capital of France is", " Paris")
    assert wrapped.loglikelihood([request])[0].logprob == pytest.approx(
        adapter.loglikelihood([request])[0].logprob, rel=1e-6
    )
    # Same weights, same fingerprint: a training loop's results are shared with the saved checkpoint's.
    assert isinstance(wrapped, HFAdapter)
    assert wrapped._hash_weights() == HFAdapter(model, tokenizer, name="again")._hash_weights()


def test_evaluate_accepts_an_in_memory_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    report = harness.evaluate(model, ["harness_tone"], tokenizer=tokenizer, limit=4, store=tmp_path, step=7)
    assert {s.metric for s in report.scores} == {"acc", "acc_norm"}
    runs = harness.ResultStore(tmp_path).runs()
    assert list(runs["step"]) == [7]


@pytest.mark.parametrize(
    ("target", "message"),
    [("/does/not/exist", "does not exist"), (__file__, r"not a \.gguf")],
)
def test_bad_model_paths(target: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        load_adapter(f"hf:{target}", {})


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"no config\.json"):
        load_adapter(f"hf:{tmp_path}", {})


def test_a_training_model_goes_back_to_training_mode(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model.train()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    harness.evaluate(
        model, ["harness_tone", "harness_facts_qa"], tokenizer=tokenizer, limit=2, store=tmp_path
    )
    assert model.training
    assert tokenizer.pad_token == AutoTokenizer.from_pretrained(tiny_model_dir).pad_token
    assert torch.equal(torch.rand(1), expected_next)  # greedy scoring left the caller's RNG alone
