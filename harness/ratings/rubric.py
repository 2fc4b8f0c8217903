"""Rubrics for rubric-mode campaigns: named criteria, each on a 1–5 scale with every point described.

A rubric is a small YAML file (see `examples/rubric.yaml`)::

    name: answer-quality
    instructions: Read the question and the answer, then rate the answer.
    show_target: true          # show the task's reference answer next to the output
    criteria:
      - name: correctness
        question: Is the answer factually correct?
        scale:
          1: Wrong or unrelated.
          ...
          5: Fully correct.

Every scale point must be described, so raters read the same meaning into "3"; unknown keys are an
error naming the key, like task YAML, so a typo never silently drops a criterion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.files import load_yaml_file

__all__ = [
    "PAIRWISE_QUESTION",
    "SCALE_POINTS",
    "Criterion",
    "Rubric",
    "load_rubric",
    "rubric_from_mapping",
]

SCALE_POINTS = (1, 2, 3, 4, 5)
# Pairwise campaigns ask one question; its name is the `question` column of their ratings.
PAIRWISE_QUESTION = "preference"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_RUBRIC_KEYS = {"name", "instructions", "show_target", "criteria"}
_CRITERION_KEYS = {"name", "question", "scale"}


@dataclass(frozen=True)
class Criterion:
    name: str  # identifier: the `question` column of this criterion's ratings
    question: str  # what the rater is asked
    scale: tuple[str, ...]  # description of points 1..5, in order

    def describe(self, point: int) -> str:
        return self.scale[point - 1]


@dataclass(frozen=True)
class Rubric:
    name: str
    criteria: tuple[Criterion, ...]
    instructions: str = ""
    show_target: bool = False

    @property
    def criterion_names(self) -> tuple[str, ...]:
        return tuple(criterion.name for criterion in self.criteria)

    def to_mapping(self) -> dict[str, Any]:
        """The YAML/JSON shape `rubric_from_mapping` reads back (campaigns store their rubric so)."""
        return {
            "name": self.name,
            "instructions": self.instructions,
            "show_target": self.show_target,
            "criteria": [
                {
                    "name": c.name,
                    "question": c.question,
                    "scale": {point: text for point, text in zip(SCALE_POINTS, c.scale, strict=True)},
                }
                for c in self.criteria
            ],
        }


def _unknown(keys: Any, allowed: set[str], where: str) -> None:
    extra = sorted(str(key) for key in keys if key not in allowed)
    if extra:
        raise HarnessError(f"unknown key '{extra[0]}' in {where} (allowed: {', '.join(sorted(allowed))})")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HarnessError(f"{where} must be a non-empty string")
    return value.strip()


def _scale(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, Mapping):
        raise HarnessError(f"{where} must map each point 1-5 to its description")
    points: dict[int, str] = {}
    for key, text in value.items():
        try:
            point = int(key)
        except (TypeError, ValueError):
            raise HarnessError(f"{where} has point '{key}'; points are the whole numbers 1-5") from None
        if point not in SCALE_POINTS or str(key).strip() != str(point):
            raise HarnessError(f"{where} has point '{key}'; points are the whole numbers 1-5")
        points[point] = _text(text, f"{where} point {point}")
    missing = [str(point) for point in SCALE_POINTS if point not in points]
    if missing:
        raise HarnessError(f"{where} does not describe point(s) {', '.join(missing)}; describe all of 1-5")
    return tuple(points[point] for point in SCALE_POINTS)


def _criterion(value: Any, index: int) -> Criterion:
    where = f"criterion {index}"
    if not isinstance(value, Mapping):
        raise HarnessError(f"{where} must be a mapping with name, question and scale")
    _unknown(value.keys(), _CRITERION_KEYS, where)
    name = _text(value.get("name"), f"{where} name")
    if not _NAME_RE.match(name):
        raise HarnessError(
            f"criterion name '{name}' must be lower-case letters, digits and _ (a letter first, 40 at most)"
        )
    where = f"criterion '{name}'"
    return Criterion(
        name=name,
        question=_text(value.get("question"), f"{where} question"),
        scale=_scale(value.get("scale"), f"{where} scale"),
    )


def rubric_from_mapping(value: Any, source: str = "rubric") -> Rubric:
    """A validated `Rubric`; HarnessError naming the first problem otherwise."""
    if not isinstance(value, Mapping):
        raise HarnessError(f"{source} must be a mapping with name and criteria")
    _unknown(value.keys(), _RUBRIC_KEYS, source)
    criteria_value = value.get("criteria")
    if not isinstance(criteria_value, list) or not criteria_value:
        raise HarnessError(f"{source} needs a non-empty list of criteria")
    criteria = tuple(_criterion(item, index) for index, item in enumerate(criteria_value, start=1))
    names = [criterion.name for criterion in criteria]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise HarnessError(f"{source} names criterion '{duplicated[0]}' more than once")
    show_target = value.get("show_target", False)
    if not isinstance(show_target, bool):
        raise HarnessError(f"{source} show_target must be true or false")
    instructions = value.get("instructions") or ""
    if not isinstance(instructions, str):
        raise HarnessError(f"{source} instructions must be a string")
    return Rubric(
        name=_text(value.get("name"), f"{source} name"),
        criteria=criteria,
        instructions=instructions.strip(),
        show_target=show_target,
    )


def load_rubric(path: str | Path) -> Rubric:
    """Read and validate a rubric YAML file."""
    file = Path(path)
    loaded = load_yaml_file(file, "rubric")
    return rubric_from_mapping(loaded, f"rubric {file}")
