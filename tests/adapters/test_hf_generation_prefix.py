"""hf generation shares the prompt prefix its batch's rows have in common: the prefix is encoded once
(and kept for later batches), and greedy outputs are the same as without sharing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.adapters import hf_generation, load_adapter
from harness.adapters.hf import HFAdapter
from harness.requests import GenerationRequest, GenerationSettings

FEWSHOT = (
    "Answer with a short fact.\n\n"
    "Question: What is the capital of France?\nAnswer: Paris\n\n"
    "Question: How many days are in a week?\nAnswer: seven\n\n"
)
QUESTIONS = [
    "What boils at one hundred degrees?",
    "Who bakes bread?",
    "What is 2 + 2?",
    "Where is Berlin?",
    "What orbits the Earth?",
    "Why?",
]


def _requests(prefix: str = FEWSHOT) -> list[GenerationRequest]:
    settings = GenerationSettings(max_tokens=12, stop=("\n\n",))
    return [GenerationRequest(f"{prefix}Question: {q}\nAnswer:", settings) for q in QUESTIONS]


@pytest.fixture
def adapter(tiny_model_dir: Path) -> HFAdapter:
    loaded = load_adapter(f"hf:{tiny_model_dir}", {"batch_size": "4"})
    assert isinstance(loaded, HFAdapter)
    return loaded


@pytest.fixture
def encoded_tokens(adapter: HFAdapter) -> Iterator[list[int]]:
    """Tokens that go through the decoder per forward call (prompt encodings, then one per row a step)."""
    counts: list[int] = []

    def count(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            counts.append(int(ids.numel()))

    handle = adapter.model.base_model.register_forward_pre_hook(count, with_kwargs=True)
    yield counts
    handle.remove()


def test_shared_prefix_gives_the_same_generations_and_is_encoded_once(
    adapter: HFAdapter, encoded_tokens: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix_tokens = len(adapter.tokenizer.encode(FEWSHOT)) - 2  # the last tokens may merge with "Question"
    shared = adapter.generate(_requests())
    shared_work = sum(encoded_tokens)
    encoded_tokens.clear()
    monkeypatch.setattr(hf_generation, "MIN_SHARED_TOKENS", 10**9)  # no batch shares anything
    adapter._prefix_memo = None
    plain = adapter.generate(_requests())
    plain_work = sum(encoded_tokens)
    assert shared == plain
    assert {len(r.text) > 0 for r in shared} == {True}
    # Six rows in batches of four and two: the prefix ran once instead of six times.
    assert plain_work - shared_work >= 5 * prefix_tokens


def test_the_prefix_is_kept_for_the_next_call(adapter: HFAdapter, encoded_tokens: list[int]) -> None:
    first = adapter.generate(_requests())
    first_work = sum(encoded_tokens)
    encoded_tokens.clear()
    again = adapter.generate(_requests())
    prefix_tokens = len(adapter.tokenizer.encode(FEWSHOT)) - 2
    assert again == first and first_work - sum(encoded_tokens) >= prefix_tokens


def test_rows_without_a_common_prefix_run_as_before(
    adapter: HFAdapter, encoded_tokens: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [GenerationRequest(q, GenerationSettings(max_tokens=6)) for q in QUESTIONS]
    mixed = adapter.generate(requests)
    monkeypatch.setattr(hf_generation, "MIN_SHARED_TOKENS", 10**9)
    assert adapter.generate(requests) == mixed
    assert adapter._prefix_memo is not None and len(adapter._prefix_memo) == 0
