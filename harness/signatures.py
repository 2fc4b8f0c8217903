"""Metric signatures: sacrebleu-style 'name|key:value|...|library:VERSION|harness:VERSION' strings.

A signature names a metric with every setting that changes its number and the versions of the code that
computed it, so a reported number can be reproduced (and `harness.metrics.metric_from_signature` can
rebuild the metric). Only the text format lives here, below everything that writes or reads signatures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from harness.versions import harness_version, library_version


def decode_setting(text: str) -> Any:
    """A setting's value as `encode_setting` wrote it."""
    if text in ("yes", "no"):
        return text == "yes"
    try:
        return json.loads(text)
    except ValueError:
        return text


def encode_setting(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and "|" not in value and decode_setting(value) == value:
        return value
    # JSON for everything else, and for strings that would read back as something else ("1",
    # "yes", "null"); '|' only occurs inside JSON strings, where its escape keeps the signature
    # splittable on '|'.
    return json.dumps(value, ensure_ascii=False).replace("|", "\\u007c")


def make_signature(
    name: str, settings: Mapping[str, object] | None = None, libraries: Sequence[str] = ()
) -> str:
    """sacrebleu-style 'name|key:value|...|library:VERSION|harness:VERSION'.

    `settings` should be the metric's factory settings (so `metric_from_signature` can rebuild it),
    `libraries` the distributions whose code determines the number.
    """
    parts = [name]
    for key, value in (settings or {}).items():
        parts.append(f"{key}:{encode_setting(value)}")
    parts.extend(f"{library}:{library_version(library)}" for library in libraries)
    parts.append(f"harness:{harness_version()}")
    return "|".join(parts)


__all__ = ["decode_setting", "encode_setting", "make_signature"]
