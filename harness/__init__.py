"""harness: evaluate language models, keep every result, and gate regressions.

The public API is listed in `__all__`; everything else is private to the package.
"""

from harness.adapters import ADAPTERS, ModelAdapter, load_adapter, wrap_model
from harness.api import EvaluationReport, evaluate
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
from harness.store import ResultStore

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
