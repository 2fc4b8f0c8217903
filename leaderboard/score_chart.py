"""The leaderboard as a chart: one bar per row for one column (the average or a task), with its interval.

A Vega-Lite spec (drawn by `st.vega_lite_chart`), so names reach the browser as data, drawn as text
on a canvas, never as markup. Rows keep the leaderboard's order (tier, then rank), so the chart reads
top-down like the table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.leaderboard.heatmap import row_label
from harness.leaderboard.ranking import Leaderboard, column_label, direction_arrow

__all__ = ["MAX_ROWS", "chart_frame", "score_chart_spec"]

MAX_ROWS = 200  # one bar per row: past this many the chart is taller than anyone reads


def chart_frame(board: Leaderboard, column: str, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """row (label), run_id, value, ci_low, ci_high for `column`, for the board's first `max_rows`
    rows; rows without a value are left out."""
    table = board.table.head(max_rows)
    # A label may repeat (two runs of one model at one step): the run id keeps bars apart.
    labels = [f"{row_label(row)} [{row['run_id']}]" for _, row in table.iterrows()]
    frame = pd.DataFrame(
        {
            "row": labels,
            "run_id": table["run_id"].astype(str),
            "value": table[column].astype(float),
            "ci_low": table.get(f"{column} ci_low", pd.Series(float("nan"), index=table.index)).astype(float),
            "ci_high": table.get(f"{column} ci_high", pd.Series(float("nan"), index=table.index)).astype(
                float
            ),
        }
    )
    return frame[frame["value"].notna()].reset_index(drop=True)


def score_chart_spec(board: Leaderboard, column: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame and the Vega-Lite spec of bars for `column` with their intervals as error bars."""
    frame = chart_frame(board, column)
    higher = board.higher_is_better.get(column, True)
    metric = board.metrics.get(column)
    title = column_label(column, metric, higher) if metric else f"{column} {direction_arrow(higher)}"
    y = {"field": "row", "type": "nominal", "sort": None, "title": None, "axis": {"labelLimit": 320}}
    x = {"field": "value", "type": "quantitative", "title": title}
    tooltip = [
        {"field": "row", "title": "run"},
        {"field": "value", "format": ".4f"},
        {"field": "ci_low", "format": ".4f", "title": "interval low"},
        {"field": "ci_high", "format": ".4f", "title": "interval high"},
    ]
    spec: dict[str, Any] = {
        "height": {"step": 18},
        "layer": [
            {"mark": {"type": "bar", "opacity": 0.75}, "encoding": {"y": y, "x": x, "tooltip": tooltip}},
            {
                "mark": {"type": "rule", "strokeWidth": 1.5},
                "encoding": {
                    "y": y,
                    "x": {"field": "ci_low", "type": "quantitative"},
                    "x2": {"field": "ci_high"},
                },
            },
        ],
    }
    return frame, spec
