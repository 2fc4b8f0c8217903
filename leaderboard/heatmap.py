"""The leaderboard as a heat map: every task in one screen width, however many there are.

Streamlit's data grid gives each column a readable width and scrolls sideways beyond that; a dozen
tasks of `task · metric ↑` headers no longer fit at 1400 px. This view is a plain HTML table whose
task headers are written vertically and whose task columns share the width left by the names, so
it never scrolls sideways. Each cell is tinted by the row's place in that column (darker is better,
the metric's direction folded in) and carries its interval as a tooltip.

Every string that comes from the store (model, experiment, task and metric names, run ids) is
HTML-escaped here: none of it is ever read as markup.
"""

from __future__ import annotations

import math
import numbers
from html import escape
from typing import Any

import pandas as pd

from harness.leaderboard.ranking import (
    AVERAGE,
    MEAN_RANK,
    RANK,
    TASK_COUNT,
    TIER,
    Leaderboard,
    column_label,
    direction_arrow,
    interval_text,
)

__all__ = ["HEATMAP_CLASS", "MAX_ROWS", "heatmap_html", "row_label"]

# A page of HTML, not a virtualised grid: past this many rows it would grow to megabytes.
MAX_ROWS = 200
HEATMAP_CLASS = "harness-heatmap"  # the browser test and the screenshot find the table by it
_HEADER_HEIGHT = 230  # px: room for a vertical `task (filter)` over `metric ↑` header
_THREE_DIGIT_TASKS = 14  # at 1400 px, more task columns than this are too narrow for 0.123
_CELL = "padding:2px 4px;border-bottom:1px solid rgba(128,128,128,0.2);"


def row_label(row: pd.Series) -> str:
    """`model · experiment@step`, as the run pickers name a run (models mode: model · experiments)."""
    experiment = row.get("experiment")
    text = str(row["model"])
    if isinstance(experiment, str) and experiment:
        text += f" · {experiment}"
    step = row.get("step")
    if step is not None and not pd.isna(step):
        text += f"@{int(step)}"
    return text


def _row_labels(rows: pd.DataFrame) -> list[str]:
    """`row_label` of every row, over plain lists."""
    count = len(rows)
    models = rows["model"].tolist()
    experiments = rows["experiment"].tolist() if "experiment" in rows.columns else [None] * count
    steps = rows["step"].tolist() if "step" in rows.columns else [None] * count
    labels = []
    for model, experiment, step in zip(models, experiments, steps, strict=True):
        text = str(model)
        if isinstance(experiment, str) and experiment:
            text += f" · {experiment}"
        if step is not None and not pd.isna(step):
            text += f"@{int(step)}"
        labels.append(text)
    return labels


def _column(rows: pd.DataFrame, name: str) -> list[Any]:
    """The column's values as plain Python objects (floats, NaN, None); None for each row if absent."""
    return rows[name].tolist() if name in rows.columns else [None] * len(rows)


def _shade(column: pd.Series, higher_is_better: bool) -> pd.Series:
    """0 (worst in the column) to 1 (best), NaN where the row has no value."""
    values = column.astype(float)
    low, high = values.min(), values.max()
    if math.isnan(low) or high == low:
        return values.where(values.isna(), 0.5)
    share = (values - low) / (high - low)
    return share if higher_is_better else 1 - share


def _number(value: object, digits: int) -> str:
    if not isinstance(value, numbers.Real) or math.isnan(float(value)):  # NaN, None and pandas' NA are blanks
        return ""
    return f"{float(value):.{digits}f}"


def _vertical(lines: tuple[str, ...], title: str) -> str:
    """A header written bottom-up, one line per entry: the task, then the metric and its arrow."""
    text = "<br>".join(escape(line) for line in lines)
    return (
        f'<th title="{escape(title)}" style="height:{_HEADER_HEIGHT}px;vertical-align:bottom;'
        f'padding:2px 0;{_CELL}"><div style="writing-mode:vertical-rl;transform:rotate(180deg);'
        f'white-space:nowrap;overflow:hidden;max-height:{_HEADER_HEIGHT}px;margin:auto;line-height:1.25;">'
        f"{text}</div></th>"
    )


def heatmap_html(board: Leaderboard, *, digits: int | None = None, max_rows: int = MAX_ROWS) -> str:
    """The first `max_rows` rows of `board` (in its order) as one self-contained, escaped HTML table.

    Values get 3 decimals, or 2 past `_THREE_DIGIT_TASKS` tasks, so they still fit their narrower cells.
    Shades compare every row of the board, shown or not."""
    table = board.table
    digits = digits if digits is not None else (3 if len(board.tasks) <= _THREE_DIGIT_TASKS else 2)
    tiers = TIER in table.columns and table[TIER].nunique() > 1
    summary = [column for column in (AVERAGE, MEAN_RANK) if column in table.columns]
    fixed = [("rank", 44), *([("tier", 36)] if tiers else []), ("run", 0), ("tasks", 48)]
    arrows = {AVERAGE: direction_arrow(board.higher_is_better.get(AVERAGE, True)), MEAN_RANK: "↓"}
    fixed += [(f"{column} {arrows[column]}", 64) for column in summary]
    # Fixed widths for the names and summaries; the run column and the tasks share the rest.
    colgroup = "".join(
        f'<col style="width:{width}px">' if width else '<col style="width:22%">' for _, width in fixed
    ) + "".join("<col>" for _ in board.tasks)
    header = "".join(
        f'<th style="text-align:left;vertical-align:bottom;{_CELL}">{escape(name)}</th>' for name, _ in fixed
    )
    for task in board.tasks:
        higher = board.higher_is_better.get(task, True)
        metric = board.metrics.get(task, "")
        label = column_label(task, metric, higher)
        named = column_label(task, metric)  # the task, and the filter of a filtered metric
        lines = (named, label.removeprefix(named).removeprefix(" · "))
        header += _vertical(lines, f"{label} ({'higher' if higher else 'lower'} is better)")
    head = table.head(max_rows)
    if head.empty:
        return _document(colgroup, header, [])
    # Column by column over plain lists, then joined row by row: no per-row pandas access.
    cells: list[list[str]] = [
        [f'<td style="{_CELL}">{escape(_number(v, 0))}</td>' for v in head[RANK].tolist()]
    ]
    if tiers:
        cells.append([f'<td style="{_CELL}">{escape(str(v))}</td>' for v in head[TIER].tolist()])
    cells.append(
        [
            f'<td title="{escape(str(run_id))}" style="{_CELL}white-space:nowrap;overflow:hidden;'
            f'text-overflow:ellipsis;">{escape(name)}</td>'
            for run_id, name in zip(head["run_id"].tolist(), _row_labels(head), strict=True)
        ]
    )
    cells.append([f'<td style="{_CELL}">{int(v)}/{len(board.tasks)}</td>' for v in head[TASK_COUNT].tolist()])
    for column in summary:
        places = 2 if column == MEAN_RANK else digits
        cells.append(
            [
                f'<td style="{_CELL}text-align:right;">{escape(_number(v, places))}</td>'
                for v in head[column].tolist()
            ]
        )
    for task in board.tasks:
        # Shades compare every row of the board; only the shown rows' are written.
        shades = _shade(table[task], board.higher_is_better.get(task, True)).loc[head.index].tolist()
        lows = _column(head, f"{task} ci_low")
        highs = _column(head, f"{task} ci_high")
        column_cells = []
        for shade, low, high, value in zip(shades, lows, highs, head[task].tolist(), strict=True):
            tint = "" if pd.isna(shade) else f"background:rgba(31,119,180,{0.08 + 0.62 * float(shade):.2f});"
            interval = interval_text(low, high, digits)
            title = f' title="{escape(interval)}"' if interval else ""
            column_cells.append(
                f'<td{title} style="{_CELL}{tint}text-align:right;">{escape(_number(value, digits))}</td>'
            )
        cells.append(column_cells)
    return _document(colgroup, header, [f"<tr>{''.join(row)}</tr>" for row in zip(*cells, strict=True)])


def _document(colgroup: str, header: str, body: list[str]) -> str:
    return (
        f'<div class="{HEATMAP_CLASS}" style="width:100%;overflow-x:auto;">'
        '<table style="width:100%;'
        f'table-layout:fixed;border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums;">'
        f"<colgroup>{colgroup}</colgroup><thead><tr>{header}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
