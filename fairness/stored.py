"""Stored fairness rows read back into tables: the one reading of the row names `fairness.scores` writes.

The leaderboard's Fairness page shows these rows as they were computed when the run was made (one
computation, with its intervals and p-values); nothing is recomputed from samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.fairness.intersections import JOIN
from harness.fairness.scores import signature_settings

# The between-group statistics of a metric: `fairness/<metric>/<stat>[/<design>]`.
BETWEEN_STATS = ("difference", "ratio", "worst_group", "worst_intersection")
GROUP_COLUMNS = [
    "metric",
    "design",
    "group",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "p_value",
    "p_holm",
    "small",
    "flag",
]
BETWEEN_COLUMNS = [
    "metric",
    "design",
    "statistic",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "p_value",
    "p_holm",
    "higher_is_better",
]


@dataclass(frozen=True)
class StoredFairness:
    """`groups`: one row per stored `group/...` row; `between`: one per `fairness/...` row."""

    groups: pd.DataFrame
    between: pd.DataFrame

    def metrics(self) -> list[str]:
        return sorted(set(self.groups["metric"]))

    def designs(self, metric: str) -> list[str]:
        found = self.groups.loc[self.groups["metric"] == metric, "design"]
        # Fields alone first, then intersections, each in the order stored.
        return sorted(dict.fromkeys(found), key=lambda name: name.count(JOIN))


def _design(settings: dict[str, Any]) -> str:
    fields = settings.get("fields")
    if isinstance(fields, list) and fields:
        return JOIN.join(str(name) for name in fields)
    field = settings.get("group_field")
    return str(field) if field is not None else "group"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def read_fairness_rows(scores: pd.DataFrame) -> StoredFairness:
    """The fairness rows among `scores` (a scores table, typically one run's task)."""
    groups, between = [], []
    for row in scores.itertuples(index=False):
        name = str(row.metric)
        if not name.startswith(("group/", "fairness/")):
            continue
        settings = signature_settings(str(row.signature))
        parts = name.split("/")
        common = {
            "value": float(row.value),
            "ci_low": row.ci_low,
            "ci_high": row.ci_high,
            "n": int(row.n),
            "p_value": _number(settings.get("p_value")),
            "p_holm": _number(settings.get("p_holm")),
        }
        if parts[0] == "group" and len(parts) >= 3:
            flag = settings.get("flag")
            groups.append(
                {
                    "metric": parts[1],
                    "design": _design(settings),
                    "group": "/".join(parts[2:]),
                    **common,
                    "small": bool(settings.get("small", False)),
                    "flag": "" if flag is None else str(flag),
                }
            )
        elif parts[0] == "fairness":
            if len(parts) >= 3 and parts[2] in BETWEEN_STATS:
                metric, statistic, rest = parts[1], parts[2], parts[3:]
            else:
                metric, statistic, rest = parts[1], "value", parts[2:]
            design = "/".join(rest) if rest else _design(settings)
            between.append(
                {
                    "metric": metric,
                    "design": design,
                    "statistic": statistic,
                    **common,
                    "higher_is_better": bool(row.higher_is_better),
                }
            )
    return StoredFairness(
        pd.DataFrame(groups, columns=GROUP_COLUMNS), pd.DataFrame(between, columns=BETWEEN_COLUMNS)
    )


def heat_map_cells(groups: pd.DataFrame, metric: str, design: str) -> pd.DataFrame:
    """The cells of a two-field intersection as (row, column, value, n, p_holm) for a heat map."""
    fields = design.split(JOIN)
    picked = groups[(groups["metric"] == metric) & (groups["design"] == design)]
    if len(fields) != 2 or picked.empty:
        return pd.DataFrame(columns=["row", "column", "value", "n", "p_holm", "group"])
    cells = []
    for record in picked.itertuples(index=False):
        values = dict(part.partition("=")[::2] for part in str(record.group).split(JOIN))
        cells.append(
            {
                "row": values.get(fields[0], ""),
                "column": values.get(fields[1], ""),
                "value": record.value,
                "n": record.n,
                "p_holm": record.p_holm,
                "group": record.group,
            }
        )
    return pd.DataFrame(cells)


__all__ = ["BETWEEN_STATS", "StoredFairness", "heat_map_cells", "read_fairness_rows"]
