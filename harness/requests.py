"""Typed, frozen requests and results that flow between tasks, the runner, the cache and adapters.

A request never carries its answer: adapters return a separate result object for each request,
in the same order, so the same request can be cached, deduplicated and replayed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RequestKind = Literal["loglikelihood", "loglikelihood_rolling", "generate_until"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class LoglikelihoodRequest:
    """Score `continuation` after `context`: sum of the continuation tokens' log-probabilities."""

    context: str
    continuation: str
    kind: RequestKind = field(default="loglikelihood", init=False)


@dataclass(frozen=True, slots=True)
class LoglikelihoodResult:
    logprob: float
    is_greedy: bool
    num_tokens: int


@dataclass(frozen=True, slots=True)
class RollingLoglikelihoodRequest:
    """Score a whole text with rolling windows (perplexity)."""

    text: str
    kind: RequestKind = field(default="loglikelihood_rolling", init=False)


@dataclass(frozen=True, slots=True)
class RollingLoglikelihoodResult:
    logprob: float
    num_tokens: int


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Generate text after `prompt` (a plain string, or chat messages the adapter templates)."""

    prompt: str | tuple[ChatMessage, ...]
    settings: GenerationSettings = GenerationSettings()
    kind: RequestKind = field(default="generate_until", init=False)


@dataclass(frozen=True, slots=True)
class GenerationResult:
    text: str
    num_tokens: int


Request = LoglikelihoodRequest | RollingLoglikelihoodRequest | GenerationRequest
Result = LoglikelihoodResult | RollingLoglikelihoodResult | GenerationResult

RESULT_TYPES: dict[RequestKind, type[Result]] = {
    "loglikelihood": LoglikelihoodResult,
    "loglikelihood_rolling": RollingLoglikelihoodResult,
    "generate_until": GenerationResult,
}


def request_key(request: Request) -> str:
    """A stable content hash of a request: the same request always gets the same key."""
    payload = json.dumps(asdict(request), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def result_to_json(result: Result) -> str:
    return json.dumps(asdict(result), ensure_ascii=False)


def result_from_json(kind: RequestKind, payload: str) -> Result:
    data: dict[str, Any] = json.loads(payload)
    return RESULT_TYPES[kind](**data)
