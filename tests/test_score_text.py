"""The score printer against the references it replaces: what the CSV and JSON read back as equals what
pandas (`to_csv`) and the `json` module write from the same rows, and the table shows the four-decimal
text of Python's own formatting, on awkward values as well as ordinary ones."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from harness.cli_support import format_scores
from harness.score_text import score_text, write_scores

AWKWARD_TEXTS = ["plain", "a,b", 'say "hi"', "two\nlines", "", "  padded ", "café ✓", "tab\there", "'q'"]
AWKWARD_NUMBERS = [
    0.39,
    0.04902071300001973,
    1e-05,
    -0.00004,
    2.5e-7,
    -1.5,
    0.0,
    -0.0,
    1e16,
    123456789012345678.0,
    1e300,
    13.66955,
    float("nan"),
    float("inf"),
    float("-inf"),
    1 / 3,
    99999.99995,
    -123.45675,
]


def _frame(size: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    numbers = np.array(AWKWARD_NUMBERS * (size // len(AWKWARD_NUMBERS) + 1))[:size]
    texts = (AWKWARD_TEXTS * (size // len(AWKWARD_TEXTS) + 1))[:size]
    return pd.DataFrame(
        {
            "run_id": [f"run-{i % 7}" for i in range(size)],
            "model": texts,
            "task": [None if i % 5 == 0 else f"task_{i % 3}" for i in range(size)],
            "value": numbers,
            "stderr": rng.normal(size=size),
            "n": rng.integers(0, 10**6, size=size),
            "higher_is_better": [bool(i % 2) for i in range(size)],
        }
    )


def _same_number(ours: str, reference: str) -> bool:
    if reference in ("", "nan", "inf", "-inf") or ours == "":
        # pandas writes NaN as an empty field and infinities as `inf`; ours leaves every non-finite empty.
        return ours == "" and (reference == "" or math.isinf(float(reference)))
    return float(ours) == float(reference)


@pytest.mark.parametrize("size", [1, 18, 1000])
def test_csv_reads_back_as_pandas_writes_it(size: int) -> None:
    frame = _frame(size)
    ours = list(csv.reader(io.StringIO(score_text(frame, "csv"))))
    reference = list(csv.reader(io.StringIO(frame.to_csv(index=False))))
    assert len(ours) == len(reference) == size + 1
    assert ours[0] == reference[0]
    numeric = {"value", "stderr", "n"}
    for mine, theirs in zip(ours[1:], reference[1:], strict=True):
        for name, a, b in zip(ours[0], mine, theirs, strict=True):
            assert _same_number(a, b) if name in numeric else a == b, (name, a, b)


@pytest.mark.parametrize("size", [1, 18, 1000])
def test_json_reads_back_as_the_json_module_writes_it(size: int) -> None:
    frame = _frame(size)
    text = score_text(frame, "json")
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                record[key] = None  # JSON has no NaN or infinity: they are null
            elif isinstance(value, np.integer):
                record[key] = int(value)
    assert json.loads(text) == records
    # The json module's own layout, line by line (numbers may be spelled differently: 0.00001, 1e-05).
    layout = json.dumps(json.loads(text), indent=2).splitlines()
    assert [line.partition(": ")[0] for line in text.splitlines()] == [
        line.partition(": ")[0] for line in layout
    ]


def test_json_keeps_every_bit_of_a_double() -> None:
    values = np.random.default_rng(3).normal(size=500) * 10.0 ** np.arange(-250, 250)
    frame = pd.DataFrame({"value": values})
    assert [row["value"] for row in json.loads(score_text(frame, "json"))] == values.tolist()
    assert [float(row["value"]) for row in csv.DictReader(io.StringIO(score_text(frame, "csv")))] == (
        values.tolist()
    )


@pytest.mark.parametrize("value", AWKWARD_NUMBERS)
def test_table_numbers_are_python_s_four_decimals(value: float) -> None:
    frame = pd.DataFrame({"value": [value, 1.0]})
    lines = score_text(frame, "table").splitlines()
    expected = "NaN" if math.isnan(value) else f"{value:.4f}"
    shown = lines[1].strip()
    if expected != shown:
        # Allowed: the sign of a zero, and the last digit where value * 10**4 is all but exactly a tie.
        near_tie = abs(abs(value * 1e4) % 1 - 0.5) < 1e-6
        assert float(shown) == float(expected) or (near_tie and abs(float(shown) - float(expected)) < 1.01e-4)
    assert len({len(line) for line in lines}) == 1  # right-aligned


def test_table_aligns_text_left_and_numbers_right() -> None:
    frame = pd.DataFrame({"model": ["m", "longer-model"], "value": [0.5, 12.25], "n": [3, 1000]})
    assert score_text(frame, "table").splitlines() == [
        "model           value     n",
        "m              0.5000     3",
        "longer-model  12.2500  1000",
    ]


@pytest.mark.parametrize("output_format", ["csv", "json", "table"])
def test_writing_to_a_stream_gives_the_text_and_a_newline(output_format: str) -> None:
    frame = _frame(40)
    stream = io.BytesIO()
    write_scores(frame, output_format, stream)
    assert stream.getvalue().decode("utf-8") == score_text(frame, output_format) + "\n"


@pytest.mark.parametrize("output_format", ["csv", "json", "table"])
def test_no_rows(output_format: str) -> None:
    empty = _frame(3).iloc[:0]
    text = format_scores(empty, output_format)
    expected = {"csv": None, "json": "[]", "table": "(no scores)"}[output_format]
    if expected is None:
        assert next(csv.reader(io.StringIO(text)))[:3] == ["run_id", "model", "task"]
    else:
        assert text == expected


def test_objects_of_several_kinds_show_as_their_text() -> None:
    frame = pd.DataFrame({"mixed": ["a", 3, None, 2.5], "value": [1.0, 2.0, 3.0, 4.0]})
    rows = list(csv.DictReader(io.StringIO(score_text(frame, "csv"))))
    assert [row["mixed"] for row in rows] == ["a", "3", "", "2.5"]


def test_table_shows_control_characters_as_escapes() -> None:
    frame = pd.DataFrame({"model": ["two\nlines", "\x1b[31mred", "tab\there", "café ✓ x"], "n": [1, 2, 3, 4]})
    lines = score_text(frame, "table").splitlines()
    assert len(lines) == 5 and "\x1b" not in "".join(lines)
    assert [line.split("  ")[0] for line in lines[1:]] == [
        "two\\nlines",
        "\\x1b[31mred",
        "tab\\there",
        "café ✓ x",
    ]
