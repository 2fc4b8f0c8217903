"""`python` adapter: `--model python:package.module:factory` evaluates the user's own model object.

`factory` is called with the `--model-args` as keyword arguments (strings) and returns an object with any
of the protocol's batch methods (`loglikelihood`, `loglikelihood_rolling`, `generate`); a module-level
object that already has them is used as it is. `name`, `fingerprint` and `provenance` are optional: without
a fingerprint, cached results are keyed by the target, its arguments and the module's source, so editing
the model code invalidates them. An object whose answers depend on anything else (weights loaded from
elsewhere) should provide its own `fingerprint`. The working directory is importable, as with `python -m`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from harness.adapters.base import ProgressCallback
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

METHODS = ("loglikelihood", "loglikelihood_rolling", "generate")
T = TypeVar("T")


def _import_from_working_directory(module_name: str) -> Any:
    """Import `module_name` as `python -m` would see it: the working directory first, then installed code.

    The module is located by a finder over the working directory instead of an edit of `sys.path`, so
    the user's folder never shadows installed packages for the rest of the process.
    """
    top_level = module_name.partition(".")[0]
    if top_level not in sys.modules:
        spec = importlib.machinery.PathFinder.find_spec(top_level, [os.getcwd()])
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[top_level] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[top_level]
                raise
    return importlib.import_module(module_name)


def _import_target(target: str) -> tuple[Any, Any]:
    """The module and the object that `package.module:attribute.path` names."""
    module_name, separator, attribute_path = target.partition(":")
    if not separator or not module_name or not attribute_path:
        raise HarnessError(f"python adapter: target must be package.module:factory, not '{target}'")
    try:
        module = _import_from_working_directory(module_name)
    except ImportError as error:
        raise HarnessError(f"python adapter: cannot import module '{module_name}' ({error})") from None
    found: Any = module
    for part in attribute_path.split("."):
        if not hasattr(found, part):
            raise HarnessError(f"python adapter: '{module_name}' has no attribute '{attribute_path}'")
        found = getattr(found, part)
    return module, found


def _module_source_hash(module: Any) -> str:
    try:
        return hashlib.sha256(Path(inspect.getfile(module)).read_bytes()).hexdigest()
    except (TypeError, OSError):
        return ""  # a built-in or generated module: its name and the arguments still count


class PythonAdapter:
    """Checks what the user's object returns, so a wrong shape fails here with a clear message."""

    def __init__(self, model: Any, *, target: str, default_fingerprint: str) -> None:
        if not any(callable(getattr(model, method, None)) for method in METHODS):
            raise HarnessError(
                f"python adapter ({target}): {type(model).__name__} has none of the methods "
                f"{', '.join(METHODS)}"
            )
        self.model = model
        self.target = target
        self._default_fingerprint = default_fingerprint

    @property
    def name(self) -> str:
        return str(getattr(self.model, "name", None) or self.target)

    @property
    def fingerprint(self) -> str:
        return str(getattr(self.model, "fingerprint", None) or self._default_fingerprint)

    def provenance(self) -> dict[str, Any]:
        own = self.model.provenance() if callable(getattr(self.model, "provenance", None)) else {}
        return {
            "dtype": "unknown",
            "device": "unknown",
            **dict(own),
            "adapter": "python",
            "target": self.target,
        }

    def _call(self, method: str, requests: Sequence[Any], result_type: type[T], progress: Any) -> list[T]:
        function = getattr(self.model, method, None)
        if not callable(function):
            raise HarnessError(
                f"python adapter ({self.target}): {type(self.model).__name__} has no {method} method, "
                f"so it cannot serve this task's {method} requests"
            )
        results = list(function(requests, progress))
        if len(results) != len(requests):
            raise HarnessError(
                f"python adapter ({self.target}): {method} returned {len(results)} results "
                f"for {len(requests)} requests"
            )
        for result in results:
            if not isinstance(result, result_type):
                raise HarnessError(
                    f"python adapter ({self.target}): {method} must return {result_type.__name__} "
                    f"objects, got {type(result).__name__}"
                )
        return results

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        return self._call("loglikelihood", requests, LoglikelihoodResult, progress)

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]:
        return self._call("loglikelihood_rolling", requests, RollingLoglikelihoodResult, progress)

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        return self._call("generate", requests, GenerationResult, progress)


def load_python_adapter(target: str, model_args: Mapping[str, str]) -> PythonAdapter:
    module, found = _import_target(target)
    model = found
    # A class or function is a factory; an object that already has the methods is the model itself.
    if inspect.isclass(found) or (callable(found) and not any(hasattr(found, m) for m in METHODS)):
        try:
            inspect.signature(found).bind(**model_args)
        except TypeError as error:
            raise HarnessError(
                f"python adapter ({target}): the factory does not take these --model-args: {error}"
            ) from None
        except ValueError:
            pass  # no signature to check (a built-in); the call itself will tell
        model = found(**model_args)
    elif model_args:
        raise HarnessError(
            f"python adapter ({target}) is an object, not a factory, so it takes no --model-args"
        )
    identity = "\n".join(["python", target, *sorted(f"{k}={v}" for k, v in model_args.items())])
    identity += "\n" + _module_source_hash(module)
    return PythonAdapter(
        model, target=target, default_fingerprint=hashlib.sha256(identity.encode()).hexdigest()
    )
