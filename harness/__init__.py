"""harness: evaluate language models, keep every result, and gate regressions.

The public API is listed in `__all__`; everything else is private to the package. The heavier parts
(the runner, the store) load on first use, so `harness.errors` and friends can be imported from anywhere
in the project without import cycles and the CLI starts quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

if TYPE_CHECKING:
    from harness.adapters import ADAPTERS, ModelAdapter, load_adapter, wrap_model
    from harness.api import EvaluationReport, evaluate
    from harness.store import ResultStore

_LAZY = {
    "ADAPTERS": "harness.adapters",
    "ModelAdapter": "harness.adapters",
    "load_adapter": "harness.adapters",
    "wrap_model": "harness.adapters",
    "EvaluationReport": "harness.api",
    "evaluate": "harness.api",
    "ResultStore": "harness.store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = [
    "ADAPTERS",
    "ChatMessage",
    "EvaluationReport",
    "GenerationRequest",
    "GenerationResult",
    "GenerationSettings",
    "HarnessError",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "ModelAdapter",
    "ResultStore",
    "RollingLoglikelihoodRequest",
    "RollingLoglikelihoodResult",
    "evaluate",
    "load_adapter",
    "wrap_model",
]
