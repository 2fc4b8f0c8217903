"""What a model answered for one stored document, as a reader wants to see it.

A generation is its text. A multiple-choice answer is the option with the highest log-probability:
by its text when the sample stores the options (`metadata.choices`, written by `harness.api` since
option texts were kept), else by its position, as samples written before that can only be named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["option_texts", "sample_output"]


def option_texts(metadata: object) -> tuple[str, ...]:
    """The option texts a sample's metadata (a mapping, or the store's JSON text) carries; () if none."""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata) if metadata else {}
        except ValueError:
            return ()
    choices = metadata.get("choices") if isinstance(metadata, Mapping) else None
    if not isinstance(choices, list):
        return ()
    return tuple(str(choice) for choice in choices)


def sample_output(prediction: object, choice_logprobs: object, metadata: object = None) -> str:
    """The generated text; for multiple choice, the chosen option's text (or position) and log-probability."""
    if isinstance(prediction, str):
        return prediction
    if isinstance(choice_logprobs, Sequence | np.ndarray) and len(choice_logprobs) > 0:
        logprobs = np.asarray(choice_logprobs, dtype=np.float64)
        best = int(np.argmax(logprobs))
        chances = f"logprob {logprobs[best]:.2f} of {len(logprobs)} options"
        choices = option_texts(metadata)
        if len(choices) == len(logprobs):
            return f"{choices[best]} (option {best}, {chances})"
        return f"option {best} ({chances})"
    return ""
