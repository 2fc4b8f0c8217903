"""The model adapter protocol: three batch methods, in the spirit of lm-evaluation-harness's `LM`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

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
