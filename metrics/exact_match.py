"""exact_match for generate_until, matching lm-eval 0.4.13 (`exact_match_hf_evaluate`).

lm-eval runs the prediction and the references through numpy string arrays, and two numpy
behaviours leak into its scores, so we reproduce them rather than "fix" them:

* a fixed-width unicode array drops trailing NUL characters ("a\\0" == "a");
* `np.char.lower` keeps the array's width, so a string that grows when lowercased ("İ" -> "i̇")
  is truncated to the width of the longest string in its array. The prediction is in an array of
  copies of itself, the references share one array, so the widths differ.

With several references lm-eval repeats the prediction once per reference and scores 1 when any
of them matches (ConfigurableTask.process_results, `multiple_target`).

One deliberate difference: lm-eval with `regexes_to_ignore: []` and no other option compares
Python lists, so several references must ALL match; we treat an empty list like no list (any).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.metrics.base import (
    METRICS,
    SampleOutcome,
    check_output_type,
    make_signature,
    mean_of_first,
    require,
)

_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)  # ASCII only, as in lm-eval
_DROP_DIGITS = str.maketrans("", "", string.digits)  # ASCII only, as in lm-eval


@dataclass(frozen=True)
class ExactMatch:
    ignore_case: bool = False
    ignore_punctuation: bool = False
    ignore_numbers: bool = False
    regexes_to_ignore: tuple[str, ...] = ()
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    # Plain (unannotated) class attributes, so the dataclass does not turn them into fields.
    name = "exact_match"
    higher_is_better = True
    statistic_names = ("match", "count")
    output_types = frozenset({"generate_until"})
    is_mean = True

    def __post_init__(self) -> None:
        patterns = []
        for regex in self.regexes_to_ignore:
            try:
                patterns.append(re.compile(regex))
            except re.error as exc:
                raise HarnessError(f"exact_match: bad regex in regexes_to_ignore {regex!r}: {exc}") from None
        object.__setattr__(self, "_patterns", tuple(patterns))

    def _normalise(self, texts: Sequence[str]) -> list[str]:
        """Normalise the strings that lm-eval keeps in ONE numpy array, in lm-eval's order."""
        values = list(texts)
        if self._patterns:
            for pattern in self._patterns:
                values = [pattern.sub("", value) for value in values]
                width = max(1, *(len(value) for value in values))  # np.array picks the widest
                values = [value.rstrip("\0") for value in values]
        else:
            width = max(1, *(len(value) for value in values))
            values = [value.rstrip("\0") for value in values]
        if self.ignore_case:
            values = [value.lower()[:width].rstrip("\0") for value in values]
        if self.ignore_punctuation:
            values = [value.translate(_DROP_PUNCTUATION).rstrip("\0") for value in values]
        if self.ignore_numbers:
            values = [value.translate(_DROP_DIGITS).rstrip("\0") for value in values]
        return values

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        prediction: str = require(outcome.prediction, "prediction", self)
        references = outcome.references or (outcome.target,)
        (normalised_prediction,) = self._normalise([prediction])
        matched = any(normalised_prediction == reference for reference in self._normalise(references))
        return (1.0 if matched else 0.0, 1.0)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return mean_of_first(totals)

    def signature(self) -> str:
        return make_signature(
            self.name,
            {
                "ignore_case": self.ignore_case,
                "ignore_punctuation": self.ignore_punctuation,
                "ignore_numbers": self.ignore_numbers,
                "regexes_to_ignore": list(self.regexes_to_ignore),
                "references": "any",
            },
        )


def _flag(name: str, value: Any) -> bool:
    # lm-eval only tests truthiness, so a YAML typo like ignore_case: "false" would silently
    # mean True there; refusing non-booleans surfaces it instead.
    if not isinstance(value, bool):
        raise HarnessError(f"exact_match: setting '{name}' must be true or false, got {value!r}")
    return value


def exact_match(
    *,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
    regexes_to_ignore: Sequence[str] | None = None,
) -> ExactMatch:
    """Factory taking the settings of a task YAML metric_list entry."""
    if regexes_to_ignore is None:
        regexes: tuple[str, ...] = ()
    elif not isinstance(regexes_to_ignore, list | tuple) or not all(
        isinstance(regex, str) for regex in regexes_to_ignore
    ):
        # lm-eval would iterate a bare string character by character; ask for a list instead.
        raise HarnessError("exact_match: regexes_to_ignore must be a list of regular expressions")
    else:
        regexes = tuple(regexes_to_ignore)
    return ExactMatch(
        ignore_case=_flag("ignore_case", ignore_case),
        ignore_punctuation=_flag("ignore_punctuation", ignore_punctuation),
        ignore_numbers=_flag("ignore_numbers", ignore_numbers),
        regexes_to_ignore=regexes,
    )


METRICS.register("exact_match", exact_match)

__all__ = ["ExactMatch", "exact_match"]
