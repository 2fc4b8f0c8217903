"""The model adapter protocol: three batch methods, in the spirit of lm-evaluation-harness's `LM`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

# Called with the number of requests just finished and the number of tokens they covered.
ProgressCallback = Callable[[int, int], None]


@runtime_checkable
class ModelAdapter(Protocol):
    """A model under evaluation. Results come back in request order, one per request."""

    @property
    def name(self) -> str:
        """A readable model name for the results store (a path, a repo name, `mock`)."""
        ...

    @property
    def fingerprint(self) -> str:
        """Identifies the weights and scoring settings: equal fingerprints give equal results."""
        ...

    def provenance(self) -> dict[str, Any]:
        """dtype, device, batch size and library versions, recorded with every run."""
        ...

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]: ...

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]: ...

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]: ...


@runtime_checkable
class ChatTemplateAdapter(Protocol):
    """An adapter that can render chat turns with its model's template (lm-eval's `apply_chat_template`).

    Tasks that ask for a chat template build their prompts through it, for every output type.
    """

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        """The turns as one prompt string; without a generation prompt the last (assistant) turn is
        continued instead of closed."""
        ...


def refuse_unknown_model_args(adapter: str, model_args: Mapping[str, str], known: frozenset[str]) -> None:
    """Raises one HarnessError line naming the first `--model-args` key `known` lacks, and the known ones."""
    unknown = sorted(set(model_args) - known)
    if unknown:
        raise HarnessError(
            f"{adapter} adapter: unknown --model-args key '{unknown[0]}' (known: {', '.join(sorted(known))})"
        )
