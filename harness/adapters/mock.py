"""`mock` adapter: deterministic scores and texts derived from a hash of each request.

It runs the whole pipeline in milliseconds, so end-to-end tests need no model. Equal requests always
get equal results, and `calls` counts the requests it actually served (the cache tests read it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.adapters.base import ProgressCallback
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

_WORDS = ("Paris", "12", "Mars", "blue", "cold", "eight", "water", "London", "yes", "no")


def _unit(*parts: str) -> float:
    """A number in [0, 1) that depends only on the given strings."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _words(text: str) -> int:
    return max(1, len(re.findall(r"\S+", text)))


class MockAdapter:
    def __init__(self, seed: str = "0", name: str = "mock") -> None:
        self.seed = seed
        self._name = name
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"mock:{self.seed}".encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        return {"adapter": "mock", "seed": self.seed, "dtype": "none", "device": "none", "batch_size": 1}

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        results = []
        for request in requests:
            tokens = _words(request.continuation)
            noise = _unit(self.seed, request.context, request.continuation)
            results.append(LoglikelihoodResult(-tokens * (1.0 + 3.0 * noise), noise > 0.7, tokens))
        self._served(len(requests), progress)
        return results

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]:
        results = []
        for request in requests:
            tokens = _words(request.text)
            results.append(
                RollingLoglikelihoodResult(-tokens * (2.0 + _unit(self.seed, request.text)), tokens)
            )
        self._served(len(requests), progress)
        return results

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        """A fixed, readable template (`<|role|>` before each turn), so chat prompts can be tested."""
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        if not add_generation_prompt:
            return text.removesuffix("\n")  # the last turn is continued, not closed
        return text + "<|assistant|>\n"

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        results = []
        for request in requests:
            prompt = request.prompt if isinstance(request.prompt, str) else _chat_text(request.prompt)
            word = _WORDS[int(_unit(self.seed, prompt) * len(_WORDS))]
            results.append(GenerationResult(f" {word}", 1))
        self._served(len(requests), progress)
        return results

    def _served(self, count: int, progress: ProgressCallback | None) -> None:
        self.calls += count
        if progress is not None:
            progress(count, count)


def _chat_text(messages: tuple[ChatMessage, ...]) -> str:
    return "\n".join(f"{m.role}: {m.content}" for m in messages)


def load_mock_adapter(target: str, model_args: Mapping[str, str]) -> MockAdapter:
    return MockAdapter(seed=target or model_args.get("seed", "0"), name=model_args.get("name", "mock"))
