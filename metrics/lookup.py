"""Building a metric by name, or back from a stored signature: the one place that knows every source of
metrics, the registry (`metrics.base.METRICS`) and Hugging Face `evaluate` modules (`metrics.hf_evaluate`).

It sits above both, so neither needs the other; `evaluate` itself is still imported only when an
`evaluate:` metric is built.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError
from harness.metrics.base import EVALUATE_PREFIX, METRICS, Metric
from harness.metrics.hf_evaluate import load_evaluate_metric
from harness.signatures import decode_setting


def get_metric(name: str, **settings: Any) -> Metric:
    """Build a metric from its registered name and task-YAML settings (e.g. ignore_case=True).

    `evaluate:<name-or-path>` wraps a Hugging Face `evaluate` module (see metrics.hf_evaluate).
    """
    if name.startswith(EVALUATE_PREFIX):
        factory: Callable[..., Metric] = functools.partial(
            load_evaluate_metric, name.removeprefix(EVALUATE_PREFIX)
        )
    else:
        factory = METRICS.get(name)  # UnknownNameError suggests the closest name
    try:
        # Bind first so an unknown setting is reported as a user error, not a TypeError deep inside.
        inspect.signature(factory).bind(**settings)
    except TypeError:
        accepted = [p for p in inspect.signature(factory).parameters if p != "self"]
        unknown = sorted(set(settings) - set(accepted))
        listing = ", ".join(accepted) if accepted else "none"
        raise HarnessError(
            f"metric '{name}' does not accept setting(s) {', '.join(unknown) or sorted(settings)}; "
            f"accepted settings: {listing}"
        ) from None
    return factory(**settings)


def metric_from_signature(signature: str) -> Metric:
    """Rebuild the metric that produced `signature`, settings included.

    Statistics layouts and aggregation rules can depend on settings (BLEU's n-gram order and
    smoothing, the label set of F1), so code that re-aggregates stored statistics should rebuild the
    metric from the stored signature rather than from its bare name. Keys that are not settings of
    the metric (library versions, descriptive entries) are skipped.
    """
    name, *parts = signature.split("|")
    if name.startswith(EVALUATE_PREFIX):
        accepted = set(inspect.signature(load_evaluate_metric).parameters)
    else:
        accepted = set(inspect.signature(METRICS.get(name)).parameters)
    settings: dict[str, Any] = {}
    for part in parts:
        key, separator, text = part.partition(":")
        if separator and key in accepted:
            settings[key] = decode_setting(text)
    return get_metric(name, **settings)


__all__ = ["get_metric", "metric_from_signature"]
