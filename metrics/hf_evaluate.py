"""Hugging Face `evaluate` modules as metrics: `metric: evaluate:<name-or-local-path>` in metric_list.

Nothing is downloaded: a local script (a `.py` file, or a folder holding `<folder>.py`) is loaded
as it is, and a hub name is loaded only from the copy `evaluate` cached when it was last loaded
online. Anything else is an error that says how to make the module available.

An `evaluate` module computes one number for a list of predictions; harness needs per-document
statistics, so each document is scored on its own and the corpus value is the mean of those
values (right for accuracy-like modules; for corpus-level ones such as BLEU use the built-in
metrics). The module's source hash is part of the signature.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.metrics.base import (
    EVALUATE_PREFIX,
    SampleOutcome,
    check_output_type,
    make_signature,
    mean_of_first,
    require,
)

__all__ = ["EvaluateMetric", "load_evaluate_metric"]

_MODULE_KINDS = ("metric", "comparison", "measurement")


def _local_script(spec: str) -> Path | None:
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".py":
        return path
    if path.is_dir() and (path / f"{path.name}.py").is_file():
        return path / f"{path.name}.py"
    return None


def _cached_script(spec: str, modules_cache: Path) -> Path | None:
    """The newest copy of a hub module in evaluate's modules cache, as evaluate itself lays it out."""
    if spec.count("/") > 1:
        return None
    owners = (
        [spec.replace("/", "--")] if "/" in spec else [f"evaluate-{kind}--{spec}" for kind in _MODULE_KINDS]
    )
    script = spec.split("/")[-1] + ".py"
    found = [
        candidate
        for owner in owners
        for candidate in (modules_cache / "evaluate_modules" / "metrics" / owner).glob(f"*/{script}")
        if len(candidate.parent.name) == 64  # evaluate names each cached copy by its 64-hex hash
    ]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def modules_cache() -> Path:
    """evaluate's modules cache, computed as `evaluate.config` does: importing `evaluate` pulls in
    transformers and torch (many seconds), which a missing module should not cost."""
    home = os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface"))
    return Path(os.getenv("HF_MODULES_CACHE", os.path.join(os.path.expanduser(home), "modules")))


def _import_evaluate() -> Any:
    try:
        import evaluate
    except ImportError:
        raise HarnessError("evaluate: metrics need the `evaluate` package: pip install evaluate") from None
    return evaluate


@dataclass(frozen=True)
class EvaluateMetric:
    spec: str
    script: Path
    key: str | None = None
    higher_is_better: bool = True
    multiple_references: bool = False
    compute_kwargs: Mapping[str, Any] = field(default_factory=dict)
    _module: Any = field(default=None, repr=False, compare=False)

    statistic_names = ("value", "count")
    output_types = frozenset({"generate_until"})
    is_mean = True

    @property
    def name(self) -> str:
        return f"{EVALUATE_PREFIX}{self.spec}"

    def _value(self, result: Any) -> float:
        if not isinstance(result, Mapping) or not result:
            raise HarnessError(f"{self.name}: compute() returned {result!r}, not a dict of scores")
        key = self.key
        if key is None:
            if len(result) != 1:
                raise HarnessError(
                    f"{self.name} returns several scores ({', '.join(map(str, result))}); "
                    "choose one with key: NAME"
                )
            (key,) = result
        if key not in result:
            raise HarnessError(
                f"{self.name}: no score '{key}' in its results ({', '.join(map(str, result))})"
            )
        value = result[key]
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise HarnessError(f"{self.name}: score '{key}' is {value!r}, not a number")
        return float(value)

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        prediction = require(outcome.prediction, "prediction", self)
        references = outcome.references or (outcome.target,)
        if self.multiple_references:
            reference: Any = list(references)
        elif len(references) == 1:
            reference = references[0]
        else:
            raise HarnessError(
                f"{self.name}: a document has {len(references)} references; "
                "set multiple_references: true if the module accepts lists"
            )
        try:
            result = self._module.compute(
                predictions=[prediction], references=[reference], **self.compute_kwargs
            )
        except HarnessError:
            raise
        except Exception as error:  # a third-party script: report its failure as bad input
            raise HarnessError(f"{self.name}: compute() failed: {type(error).__name__}: {error}") from None
        return (self._value(result), 1.0)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return mean_of_first(totals)

    def signature(self) -> str:
        source = hashlib.sha256(self.script.read_bytes()).hexdigest()[:16]
        settings = {
            "key": self.key,
            "higher_is_better": self.higher_is_better,
            "multiple_references": self.multiple_references,
            "compute_kwargs": dict(self.compute_kwargs),
            "aggregation": "mean_of_documents",
            "source_sha256": source,
        }
        return make_signature(self.name, settings, libraries=("evaluate",))


def load_evaluate_metric(
    spec: str,
    *,
    key: str | None = None,
    higher_is_better: bool = True,
    multiple_references: bool = False,
    compute_kwargs: Mapping[str, Any] | None = None,
) -> EvaluateMetric:
    """`evaluate:<spec>`: a local script or folder, or a hub name already in evaluate's cache."""
    if not spec:
        raise HarnessError("evaluate: name a module, e.g. evaluate:accuracy or evaluate:./my_metric")
    if key is not None and not isinstance(key, str):
        raise HarnessError(f"evaluate:{spec}: key must be text, got {key!r}")
    if not isinstance(higher_is_better, bool) or not isinstance(multiple_references, bool):
        raise HarnessError(f"evaluate:{spec}: higher_is_better and multiple_references must be true or false")
    if compute_kwargs is not None and not isinstance(compute_kwargs, Mapping):
        raise HarnessError(f"evaluate:{spec}: compute_kwargs must be a mapping")
    cache = modules_cache()
    script = _local_script(spec) or _cached_script(spec, cache)
    if script is None:
        raise HarnessError(
            f"evaluate module '{spec}' is not available offline (harness never downloads metrics): "
            "cache it once on a networked machine with "
            f"`python -c \"import evaluate; evaluate.load('{spec}')\"` "
            f"(it lands in {cache}), or use a local copy: evaluate:/path/to/{spec.split('/')[-1]}"
        )
    evaluate = _import_evaluate()
    try:
        module = evaluate.load(str(script), keep_in_memory=True)
    except Exception as error:  # the script itself failed to import or build
        raise HarnessError(f"evaluate module '{spec}' failed to load from {script}: {error}") from None
    return EvaluateMetric(
        spec,
        script,
        key=key,
        higher_is_better=higher_is_better,
        multiple_references=multiple_references,
        compute_kwargs=dict(compute_kwargs or {}),
        _module=module,
    )
