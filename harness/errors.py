"""Errors a user can fix. The CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


class HarnessError(Exception):
    """Bad usage or bad input: the message is shown to the user as is, on one line."""


class UnknownNameError(HarnessError, KeyError):
    """An unknown task, metric or adapter name; the message suggests the closest known name."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known_names = sorted(known)
        close = difflib.get_close_matches(name, known_names, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        listing = f" (known: {', '.join(known_names)})" if known_names and not close else ""
        super().__init__(f"unknown {kind} '{name}'{hint}{listing}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class PartialResultsError(HarnessError):
    """An adapter call failed after some of its requests finished; `completed` maps their positions in
    the request list to their results, so the caller can cache them before reporting the error."""

    def __init__(self, message: str, completed: Mapping[int, Any]) -> None:
        super().__init__(message)
        self.completed = dict(completed)
