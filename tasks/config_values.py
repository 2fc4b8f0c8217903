"""Typed values of a task's YAML: counts and generation settings, checked before any model call.

Each check names the file, the key, what was expected and what was found, on one line. Booleans are
not numbers here (`num_fewshot: true` is a mistake, not 1), and every count has a ceiling, so a typo of
a few extra digits is refused rather than run for days.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = [
    "GENERATION_KEYS",
    "MAX_NEW_TOKENS",
    "MAX_REPEATS",
    "closest",
    "count",
    "generation_kwargs",
    "where",
]

GENERATION_KEYS = frozenset(
    {"until", "max_gen_toks", "max_new_tokens", "do_sample", "temperature", "top_p", "seed"}
)
# Far past any real setting (lm-eval's self-consistency tasks repeat 64 times; long-context models
# generate a few hundred thousand tokens at most).
MAX_REPEATS = 10_000
MAX_NEW_TOKENS = 1_000_000


def closest(key: str, known: frozenset[str]) -> str:
    # A high cutoff: suggest only near-typos, never a different key that merely looks alike.
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.85)
    return f" (did you mean '{close[0]}'?)" if close else ""


def where(source: Path | None) -> str:
    return f"{source}: " if source else ""


def generation_kwargs(raw: Any, fewshot_delimiter: str, source: Path | None) -> dict[str, Any]:
    if raw is not None and not isinstance(raw, Mapping):
        raise HarnessError(f"{where(source)}generation_kwargs must be a mapping")
    kwargs = dict(raw or {})
    for key in kwargs:
        if key not in GENERATION_KEYS:
            raise HarnessError(
                f"{where(source)}unknown generation_kwargs key '{key}'{closest(key, GENERATION_KEYS)}"
            )
    # As lm-eval does: without `until`, generation stops at the few-shot delimiter.
    kwargs.setdefault("until", [fewshot_delimiter])
    if isinstance(kwargs["until"], str):
        kwargs["until"] = [kwargs["until"]]
    if not isinstance(kwargs["until"], list) or not all(isinstance(stop, str) for stop in kwargs["until"]):
        raise HarnessError(f"{where(source)}generation_kwargs.until must be a string or a list of strings")
    for key in ("max_gen_toks", "max_new_tokens"):
        if key in kwargs and (type(kwargs[key]) is not int or not 0 < kwargs[key] <= MAX_NEW_TOKENS):
            raise HarnessError(
                f"{where(source)}generation_kwargs.{key} must be a positive integer up to "
                f"{MAX_NEW_TOKENS:,}, got {kwargs[key]!r}"
            )
    for key in ("temperature", "top_p"):
        value = kwargs.get(key, 0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise HarnessError(f"{where(source)}generation_kwargs.{key} must be a number >= 0, got {value!r}")
    if "do_sample" in kwargs and not isinstance(kwargs["do_sample"], bool):
        raise HarnessError(
            f"{where(source)}generation_kwargs.do_sample must be true or false, got {kwargs['do_sample']!r}"
        )
    if kwargs.get("seed") is not None and type(kwargs["seed"]) is not int:
        raise HarnessError(
            f"{where(source)}generation_kwargs.seed must be an integer, got {kwargs['seed']!r}"
        )
    return kwargs


def count(
    raw: Mapping[str, Any],
    key: str,
    default: int,
    minimum: int,
    source: Path | None,
    maximum: int | None = None,
) -> int:
    value = raw.get(key)
    if value is None:
        return default
    # bool is an int in Python; `num_fewshot: true` is a mistake, not 1.
    if type(value) is not int or value < minimum:
        raise HarnessError(f"{where(source)}{key} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise HarnessError(f"{where(source)}{key} must be at most {maximum:,}, got {value}")
    return value
