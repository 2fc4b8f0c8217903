"""The hf adapter on a tiny random-weight model: shared-context scoring, rolling windows, generation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import harness
from harness.adapters import hf_packed, load_adapter, wrap_model
from harness.adapters.hf import HFAdapter, _rolling_windows
from harness.adapters.hf_packed import PrefixMemo, packing_supported, plan_prefixes, score_packed
from harness.adapters.hf_scoring import ContextGroup, score_shared_contexts
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


FEWSHOT = "".join(
    f"Question: what comes after {word}?\nAnswer: the next one\n\n" for word in ("one", "two", "three")
)
QUESTIONS = ["what is red?", "who wrote it?", "where is Paris?", "why?", "when did it rain?", "is it big?"]
ANSWERS = [" yes", " no", " the one in the middle", " Paris, France"]


def test_plan_finds_token_prefixes_and_leaves_a_token_to_score() -> None:
    shared = tuple(range(100, 160))
    contexts = [(*shared, 1, 2), (*shared, 3), (5, 6, 7), shared, (*shared, 1, 2, 9)]
    plan = plan_prefixes(contexts, min_saving=100)
    clustered = {length: sorted(members) for length, members in plan if length}
    # `shared` itself keeps its last token outside the prefix, so the prefix is one token shorter.
    assert clustered == {len(shared) - 1: [0, 1, 3, 4]}
    assert [members for length, members in plan if not length] == [[2]]
    # A prefix that saves too little is not worth batches of its own.
    assert all(length == 0 for length, _ in plan_prefixes(contexts, min_saving=10_000))


def test_shared_prefix_path_equals_the_plain_path(adapter: HFAdapter) -> None:
    """Few-shot contexts share their examples as a token prefix: encoded once, then reused, same numbers."""
    requests = [
        LoglikelihoodRequest(FEWSHOT + f"Question: {q}\nAnswer:", a) for q in QUESTIONS for a in ANSWERS
    ]
    encoded = [adapter.encode_pair(r.context, r.continuation) for r in requests]
    contexts = list(dict.fromkeys(context for context, _ in encoded))
    (length, members), *_ = plan_prefixes(contexts)
    assert length > 40 and len(members) == len(QUESTIONS)  # one cluster: the prefix is really shared
    assert packing_supported(adapter.model, adapter.device)

    results = adapter.loglikelihood(requests)
    groups = [
        ContextGroup(context, tuple(dict.fromkeys(c for x, c in encoded if x == context)))
        for context in contexts
    ]
    plain = score_shared_contexts(adapter.model, groups, batch_size=4, device=adapter.device)
    plain_by_pair = {
        (group.context, continuation): score
        for group, scores in zip(groups, plain, strict=True)
        for continuation, score in zip(group.continuations, scores, strict=True)
    }
    for (context_ids, continuation_ids), result in zip(encoded, results, strict=True):
        reference = plain_by_pair[(context_ids, continuation_ids)]
        assert result.logprob == pytest.approx(reference.logprob, rel=1e-5)
        assert result.is_greedy == reference.is_greedy
        assert result.logprob == pytest.approx(
            _direct_logprob(adapter, context_ids, continuation_ids), rel=1e-5
        )


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_packed_rows_under_each_attention_kernel(tiny_model_dir: Path, attention: str) -> None:
    """The packed path's custom mask is additive, so the eager kernel reads it as the sdpa one does."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention)
    wrapped = wrap_model(model, AutoTokenizer.from_pretrained(tiny_model_dir), name=attention)
    assert isinstance(wrapped, HFAdapter)
    assert packing_supported(model, wrapped.device)
    requests = [
        LoglikelihoodRequest(FEWSHOT + f"Question: {q}\nAnswer:", a) for q in QUESTIONS for a in ANSWERS
    ]
    for request, result in zip(requests, wrapped.loglikelihood(requests), strict=True):
        context_ids, continuation_ids = wrapped.encode_pair(request.context, request.continuation)
        expected = _direct_logprob(wrapped, context_ids, continuation_ids)
        assert result.logprob == pytest.approx(expected, rel=1e-5)


def test_many_long_options_are_split_over_rows(adapter: HFAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hf_packed, "TOKENS_PER_ROW", 12)
    options = [f" option number {n} is a longer answer than most" for n in range(7)]
    requests = [
        LoglikelihoodRequest(c, o) for c in ("Pick one:", "Another context, pick one:") for o in options
    ]
    seen: list[int] = []
    results = adapter.loglikelihood(requests, progress=lambda done, _tokens: seen.append(done))
    assert sum(seen) == len(requests) and len(seen) > 2
    for request, result in zip(requests, results, strict=True):
        context_ids, continuation_ids = adapter.encode_pair(request.context, request.continuation)
        expected = _direct_logprob(adapter, context_ids, continuation_ids)
        assert result.logprob == pytest.approx(expected, rel=1e-5)


def test_prefix_keys_are_kept_between_calls_until_the_weights_change(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    wrapped = wrap_model(model, tokenizer, name="loop")
    assert isinstance(wrapped, HFAdapter)
    pairs = [
        [wrapped.encode_pair(FEWSHOT + f"Question: {q}\nAnswer:", a) for a in ANSWERS] for q in QUESTIONS
    ]
    groups = [ContextGroup(pair[0][0], tuple(continuation for _, continuation in pair)) for pair in pairs]
    memo = PrefixMemo()

    def score(chosen: list[ContextGroup], memo: PrefixMemo) -> list[list[Any]]:
        return score_packed(
            model, chosen, batch_size=2, device=wrapped.device, memo=memo, min_prefix_saving=64
        )

    first = score(groups[:3], memo)
    assert len(memo) == 1
    # The next chunk of the same task reuses the stored prefix (and gives the numbers a fresh run gives).
    again = score(groups[3:], memo)
    fresh = score(groups[3:], PrefixMemo())
    for kept, new in zip(again, fresh, strict=True):
        assert [s.logprob for s in kept] == pytest.approx([s.logprob for s in new], rel=1e-6)
    # A context alone (the last question of a task) still starts from the stored prefix.
    assert memo.known_length(groups[5].context) > 64
    (alone,) = score(groups[5:], memo)
    assert [s.logprob for s in alone] == pytest.approx([s.logprob for s in fresh[-1]], rel=1e-6)
    # A training step changes the weights in place: the stored keys and values are stale and dropped.
    with torch.no_grad():
        next(model.parameters()).mul_(1.5)
    changed = score(groups[:3], memo)
    recomputed = score(groups[:3], PrefixMemo())
    assert [s.logprob for s in changed[0]] == pytest.approx([s.logprob for s in recomputed[0]], rel=1e-6)
    assert [s.logprob for s in changed[0]] != pytest.approx([s.logprob for s in first[0]], rel=1e-6)


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
    context_ids, continuation_ids = adapter.encode_pair(context, " the end")
    assert len(context_ids) + len(continuation_ids) > adapter.max_length + 1  # really too long
    # lm-eval's rule: keep the last max_length + 1 tokens, score the continuation at the end of them.
    window = (context_ids + continuation_ids)[-(adapter.max_length + 1) :]
    kept_context = window[: len(window) - len(continuation_ids)]
    assert result.logprob == pytest.approx(_direct_logprob(adapter, kept_context, continuation_ids), rel=1e-5)


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
