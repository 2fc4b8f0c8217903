"""harness: evaluate language models, keep every result, and gate regressions.

The public API is listed in `__all__`; everything else is private to the package. This module is the
facade above every import layer ([tool.importlinter] in pyproject.toml), and nothing in the package imports
it (tests/test_code_quality.py checks that), so it is in no import cycle. Python runs it before any
submodule, `harness.errors` included, so it imports only the core types eagerly: the names from the API,
adapter and store layers load on first access, or every `import harness.errors` (the CLI's included)
would load the runner, the tasks and the store.
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
    from harness.predictions import ScoreReport, score
    from harness.store import ResultStore

_LAZY = {
    "ADAPTERS": "harness.adapters",
    "ModelAdapter": "harness.adapters",
    "load_adapter": "harness.adapters",
    "wrap_model": "harness.adapters",
    "EvaluationReport": "harness.api",
    "evaluate": "harness.api",
    "ScoreReport": "harness.predictions",
    "score": "harness.predictions",
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
    "ScoreReport",
    "evaluate",
    "load_adapter",
    "score",
    "wrap_model",
]
