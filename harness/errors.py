"""Errors a user can fix. The CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class HarnessError(Exception):
    """Bad usage or bad input: the message is shown to the user as is, on one line."""


def _edits(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): a swap of neighbours is one edit."""
    rows = [list(range(len(b) + 1))]
    for i, char in enumerate(a, 1):
        row = [i]
        for j, other in enumerate(b, 1):
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (char != other)))
            if i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _words(name: str) -> list[str]:
    return [word for word in name.lower().replace("-", "_").split("_") if word]


def _typo_of(name: str, known: str) -> bool:
    """A near typo (`acc_nrom`, `blue`, `mok`) or the same words in another order (`perplexity_word`)."""
    a, b = name.lower(), known.lower()
    longest = max(len(a), len(b))
    allowed = 0 if longest < 4 else 1 if longest <= 8 else 2
    return _edits(a, b) <= allowed or sorted(_words(name)) == sorted(_words(known))


def _part_of(name: str, known: str) -> bool:
    """All of `name`'s words, in a row, in a known name (`facts_qa` of `harness_facts_qa`)."""
    words, known_words = _words(name), _words(known)
    size = len(words)
    return size > 0 and any(known_words[i : i + size] == words for i in range(len(known_words) - size + 1))


def suggestions(name: str, known: Iterable[str], most: int = 4) -> list[str]:
    """Known names that mean what `name` was meant to: its near typos, else the names it is part of.
    Merely looking alike (`mcc` and `acc`, `fairness` and `harness_tone`) is not enough: a wrong hint
    misleads more than none."""
    names = sorted(known)
    same_letters = [n for n in names if n.lower() == name.lower()]  # `rougel` is rougeL, not rouge1
    typos = [n for n in names if _typo_of(name, n)]
    return (same_letters or typos or [n for n in names if _part_of(name, n)])[:most]


class UnknownNameError(HarnessError, KeyError):
    """An unknown task, metric or adapter name; the message suggests known names of the same meaning."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known_names = sorted(known)
        close = suggestions(name, known_names)
        quoted = [f"'{known_name}'" for known_name in close]
        choices = " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)
        hint = f"; did you mean {choices}?" if close else ""
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


class HarnessWarning(UserWarning):
    """Something a user should know that does not stop the command (documents with empty template
    fields, say); the CLI shows each as one `harness: warning:` line."""
