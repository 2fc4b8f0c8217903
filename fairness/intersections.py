"""Several group fields at once: a design for each field alone and for each intersection of fields.

Gaps hide in intersections (older women, say, when women and older people each look fine), so with
fields F1..Fm every field gets its own design and every combination of two or more fields gets one
whose groups are the combinations of values that occur ("gender=woman&age=70").

Intersections split the data quickly, and a cell of three samples would decide the worst group on
noise. An intersection cell with fewer samples than the minimum group size is therefore left out of
that intersection's figures and listed as too small; it is never merged into a neighbouring cell,
which would make a group that does not exist. A field on its own keeps all its groups (small ones
flagged, as with one field), so a single-field analysis reads the same as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError
from harness.fairness.groups import MIN_GROUP_SIZE, GroupDesign, group_design, group_value

# Joins field names ("gender&age") and field=value parts ("gender=woman&age=70") of an intersection.
JOIN = "&"


@dataclass(frozen=True)
class FieldDesign:
    """The groups of one field or one intersection of fields."""

    fields: tuple[str, ...]
    design: GroupDesign
    # Intersection cells left out for having fewer samples than the minimum: (label, size).
    too_small: tuple[tuple[str, int], ...] = ()

    @property
    def name(self) -> str:
        return JOIN.join(self.fields)

    @property
    def intersection(self) -> bool:
        return len(self.fields) > 1

    def problems(self, where: str) -> list[str]:
        # When every cell is too small, that is the problem, not "no sample has a group value".
        lines = self.design.problems(f"{where} [{self.name}]") if self.design.groups else []
        if self.too_small:
            listed = ", ".join(f"'{label}' ({size})" for label, size in self.too_small)
            lines.append(
                f"{where} [{self.name}]: intersections with fewer than {self.design.min_group_size} "
                f"samples are too small to report and are left out (not merged): {listed}"
            )
        return lines

    def settings(self) -> dict[str, object]:
        found = {"fields": list(self.fields), **self.design.settings()}
        if self.intersection:
            found["too_small"] = [label for label, _ in self.too_small]
        return found


def label(fields: Sequence[str], values: Sequence[str]) -> str:
    """'field=value' parts joined with '&'."""
    return JOIN.join(f"{name}={value}" for name, value in zip(fields, values, strict=True))


def field_designs(
    columns: Mapping[str, Sequence[object]],
    *,
    min_group_size: int = MIN_GROUP_SIZE,
    intersections: bool = True,
) -> list[FieldDesign]:
    """A design per field (in the order given), then per combination of two or more fields.

    With one field its groups are named by value alone (as with `group_design`); with several,
    every group is named 'field=value' so values of different fields cannot be confused.
    """
    fields = tuple(columns)
    if not fields:
        raise HarnessError("no group field given")
    sizes = {len(values) for values in columns.values()}
    if len(sizes) != 1:
        raise HarnessError(f"group fields have different lengths: {sorted(sizes)}")
    text = {name: [group_value(value) for value in columns[name]] for name in fields}
    if len(fields) == 1:
        return [FieldDesign(fields, group_design(text[fields[0]], min_group_size))]
    designs = [
        FieldDesign(
            (name,),
            group_design([None if v is None else label((name,), (v,)) for v in text[name]], min_group_size),
        )
        for name in fields
    ]
    if not intersections:
        return designs
    for order in range(2, len(fields) + 1):
        for combination in itertools.combinations(fields, order):
            designs.append(_intersection(combination, text, min_group_size))
    return designs


def _intersection(
    combination: tuple[str, ...], text: Mapping[str, list[str | None]], min_group_size: int
) -> FieldDesign:
    cells: list[str | None] = []
    for values in zip(*(text[name] for name in combination), strict=True):
        cells.append(None if any(value is None for value in values) else label(combination, values))
    full = group_design(cells, min_group_size)
    small = [
        (name, size) for name, size in zip(full.groups, full.sizes, strict=True) if size < min_group_size
    ]
    if not small:
        return FieldDesign(combination, full)
    dropped = {name for name, _ in small}
    kept = group_design([None if cell in dropped else cell for cell in cells], min_group_size)
    # The left-out cells are not "ungrouped" samples (they have every value); they are too small.
    ungrouped = int(np.count_nonzero([cell is None for cell in cells]))
    design = GroupDesign(kept.groups, kept.codes, kept.sizes, ungrouped, min_group_size)
    return FieldDesign(combination, design, tuple(small))


__all__ = ["JOIN", "FieldDesign", "field_designs", "label"]
