"""Task groups (lm-eval's `group:` files) as the leaderboard shows them: one column each, members on demand.

A run that evaluates a group stores one score row per leaf task and one per group (task = the group's
name, its aggregate), and records `details.groups = {group: [every leaf task below it]}` in its
provenance. Only leaves are recorded, so nesting is read back from the leaf sets: a group whose leaves
are a proper subset of another's is inside it (equal sets: the shorter name, then the alphabetically
first, is the outer one).

Which columns the table shows follows one rule: a group that has a value (for the metric shown) is one
column and hides everything below it; a group without one (no `aggregate_metric_list`, or not for this
metric) shows its members instead, by the same rule. Stores without `details.groups` have no groups:
every task is its own column, as before groups existed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from harness.store import Provenance

__all__ = ["TaskGroups", "task_groups"]


@dataclass(frozen=True)
class TaskGroups:
    """Groups by name, each with every leaf task below it (sub-groups' leaves included)."""

    leaves: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.leaves)

    def is_group(self, name: str) -> bool:
        return name in self.leaves

    def _inside(self, inner: str, outer: str) -> bool:
        small, large = self.leaves[inner], self.leaves[outer]
        if inner == outer or not small <= large:
            return False
        return small != large or (len(outer), outer) < (len(inner), inner)

    @cached_property
    def _enclosing(self) -> dict[str, frozenset[str]]:
        """Group -> the groups it is inside (at any depth)."""
        return {
            name: frozenset(other for other in self.leaves if self._inside(name, other))
            for name in self.leaves
        }

    @cached_property
    def _children(self) -> dict[str, tuple[str, ...]]:
        """Group -> its direct sub-groups (sorted), then the leaf tasks that are in none of them (sorted)."""
        children = {}
        for name in self.leaves:
            inner = [other for other in self.leaves if name in self._enclosing[other]]
            direct = sorted(group for group in inner if not self._enclosing[group] & set(inner))
            below = set().union(*(self.leaves[group] for group in direct))
            children[name] = (*direct, *sorted(self.leaves[name] - below))
        return children

    def children(self, group: str) -> tuple[str, ...]:
        return self._children.get(group, ())

    def descendants(self, group: str) -> frozenset[str]:
        """Every leaf task and sub-group below `group`."""
        if group not in self.leaves:
            return frozenset()
        inner = {other for other in self.leaves if group in self._enclosing[other]}
        return (self.leaves[group] | inner) - {group}

    def outermost(self, task: str) -> str:
        """The outermost group that holds `task` (a leaf or a group), or `task` itself."""
        if task in self.leaves:
            holders: Iterable[str] = self._enclosing[task]
        else:
            holders = (name for name, leaves in self.leaves.items() if task in leaves)
        # Whatever holds `task` lies inside a group that nothing encloses, and that one holds it too.
        roots = sorted(name for name in holders if not self._enclosing[name])
        return roots[0] if roots else task

    def with_members(self, tasks: Iterable[str]) -> tuple[str, ...]:
        """`tasks` and everything below the groups among them: what a task filter naming a group keeps."""
        chosen = set(tasks)
        for task in list(chosen):
            chosen |= self.descendants(task)
        return tuple(sorted(chosen))

    def _collapse(
        self, nodes: Iterable[str], present: Collection[str], seen: frozenset[str] = frozenset()
    ) -> list[str]:
        """Columns for `nodes`: a node with a value is one; a group without one gives its members' columns."""
        columns: list[str] = []
        for node in nodes:
            if node in present:
                columns.append(node)
            elif node in self.leaves and node not in seen:  # `seen`: a group named like a task never loops
                columns.extend(self._collapse(self.children(node), present, seen | {node}))
        return columns

    def _outermost_only(self, columns: Iterable[str]) -> list[str]:
        """Drops a column that lies below another one (possible only where groups overlap)."""
        unique = list(dict.fromkeys(columns))
        below = set().union(*(self.descendants(column) for column in unique))
        return [column for column in unique if column not in below]

    def columns(self, present: Collection[str]) -> tuple[str, ...]:
        """The table's columns (sorted) for the tasks and groups that have values (`present`)."""
        if not self.leaves:
            return tuple(sorted(present))
        covered = set(self.leaves).union(*self.leaves.values())
        roots = [name for name in self.leaves if not self._enclosing[name]]
        loose = [task for task in present if task not in covered]
        return tuple(sorted(self._outermost_only(self._collapse(sorted({*roots, *loose}), present))))

    def members(self, group: str, present: Collection[str]) -> tuple[str, ...]:
        """The columns a drill-down into `group` shows: sub-groups first, then tasks."""
        return tuple(self._outermost_only(self._collapse(self.children(group), present)))


def task_groups(runs: pd.DataFrame) -> TaskGroups:
    """The groups the runs recorded (`details.groups` of their provenance), leaves joined over runs."""
    leaves: dict[str, set[str]] = {}
    if "provenance" not in runs.columns:
        return TaskGroups()
    for text in runs["provenance"].dropna():
        if '"groups"' not in text:  # most runs evaluate no group: skip parsing their provenance
            continue
        recorded = Provenance.from_json(text).details.get("groups")
        if not isinstance(recorded, Mapping):
            continue
        for name, members in recorded.items():
            if isinstance(name, str) and isinstance(members, list):
                leaves.setdefault(name, set()).update(member for member in members if isinstance(member, str))
    return TaskGroups(
        {name: frozenset(members - {name}) for name, members in leaves.items() if members - {name}}
    )
