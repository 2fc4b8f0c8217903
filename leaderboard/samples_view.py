"""Shaping one run's samples for browsing: what the model answered, its metric value, filters."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.leaderboard.sample_metrics import per_sample_values
from harness.leaderboard.sample_output import sample_output

__all__ = [
    "CORRECTNESS",
    "SampleFilters",
    "filter_samples",
    "is_binary",
    "output_text",
    "sample_table",
]

CORRECTNESS = ("all", "correct", "incorrect")
NO_GROUP = "(no group)"


def output_text(prediction: object, choice_logprobs: object) -> str:
    """A generated text as is; for multiple choice, the chosen option and its log-probability.

    The store keeps option log-probabilities but not the option texts, so an option is named by
    its position.
    """
    if isinstance(prediction, str):
        return prediction
    if isinstance(choice_logprobs, Sequence | np.ndarray) and len(choice_logprobs) > 0:
        logprobs = np.asarray(choice_logprobs, dtype=np.float64)
        best = int(np.argmax(logprobs))
        return f"option {best} (logprob {logprobs[best]:.2f} of {len(logprobs)} options)"
    return ""


def sample_table(samples: pd.DataFrame, metric: str | None, signature: str | None = None) -> pd.DataFrame:
    """doc_id, task, group, prompt, target, output and `value` (the metric for this document)."""
    metadata = samples["metadata"] if "metadata" in samples.columns else [None] * len(samples)
    outputs = [  # a multiple-choice answer by its option's text, when the sample stores the options
        sample_output(prediction, logprobs, meta)
        for prediction, logprobs, meta in zip(
            samples["prediction"], samples["choice_logprobs"], metadata, strict=True
        )
    ]
    values = (
        per_sample_values(samples["statistics"], metric, signature)
        if metric is not None
        else pd.Series(math.nan, index=samples.index)
    )
    table = pd.DataFrame(
        {
            "doc_id": samples["doc_id"].astype("Int64"),
            "task": samples["task"].astype(str),
            "group": samples["group"].astype("string").fillna(NO_GROUP),
            "prompt": samples["prompt"].astype(str),
            "target": samples["target"].astype(str),
            "output": outputs,
            "value": values.astype(float),
        },
        index=samples.index,
    )
    return table.reset_index(drop=True)


def is_binary(values: pd.Series) -> bool:
    """True when every present value is 0 or 1, so "correct" and "incorrect" mean something."""
    present = values.dropna()
    return bool(len(present)) and bool(present.isin((0.0, 1.0)).all())


@dataclass(frozen=True)
class SampleFilters:
    correctness: str = "all"  # one of CORRECTNESS; needs a binary metric
    value_range: tuple[float, float] | None = None  # inclusive
    search: str = ""  # case-insensitive, in prompt, target and output
    groups: tuple[str, ...] = ()  # empty means every group


def filter_samples(table: pd.DataFrame, filters: SampleFilters) -> pd.DataFrame:
    if filters.correctness not in CORRECTNESS:
        raise ValueError(f"correctness must be one of {CORRECTNESS}, got {filters.correctness!r}")
    keep = pd.Series(True, index=table.index)
    if filters.correctness == "correct":
        keep &= table["value"] == 1.0
    elif filters.correctness == "incorrect":
        keep &= table["value"] == 0.0
    if filters.value_range is not None:
        low, high = filters.value_range
        keep &= table["value"].between(low, high)
    if filters.groups:
        keep &= table["group"].isin(filters.groups)
    text = filters.search.strip().lower()
    if text:
        haystack = table["prompt"] + "\n" + table["target"] + "\n" + table["output"]
        keep &= haystack.str.lower().str.contains(text, regex=False)
    return table[keep].reset_index(drop=True)
