"""The score printer against the references it replaces: what the CSV and JSON read back as equals what
pandas (`to_csv`) and the `json` module write from the same rows, and the table shows the four-decimal
text of Python's own formatting, on awkward values as well as ordinary ones."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

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


TIES = [0.00005, 0.00025, 0.00035, -0.00015, 0.12345, 2.00005, 0.99995, 12345.67885]


@pytest.mark.parametrize("value", AWKWARD_NUMBERS + TIES)
def test_table_numbers_are_python_s_four_decimals(value: float) -> None:
    frame = pd.DataFrame({"value": [value, 1.0]})
    lines = score_text(frame, "table").splitlines()
    expected = "NaN" if math.isnan(value) else f"{value:.4f}"
    if value == 0:
        expected = "0.0000"  # a negative zero included: no minus sign on a zero
    assert lines[1].strip() == expected
    assert len({len(line) for line in lines}) == 1  # right-aligned


def test_table_numbers_equal_python_s_on_every_step_of_a_fine_grid() -> None:
    values = [k / 100000 for k in range(-200000, 200001)] + [k / 1000000 for k in range(0, 100000, 7)]
    shown = score_text(pd.DataFrame({"value": values}), "table").splitlines()[1:]
    expected = [f"{v:.4f}" for v in values]
    differing = [(v, s.strip(), e) for v, s, e in zip(values, shown, expected, strict=True) if s.strip() != e]
    assert [d for d in differing if not d[2].startswith("-0.0000")] == []


def test_whole_numbers_stay_floats_in_csv_and_json() -> None:
    frame = pd.DataFrame({"value": [0.0, -0.0, 206.0, 1e15, 0.5]})
    records = json.loads(score_text(frame, "json"))
    assert [type(row["value"]) for row in records] == [float] * 5
    assert [row["value"] for row in records] == [0.0, -0.0, 206.0, 1e15, 0.5]
    assert math.copysign(1, records[1]["value"]) == -1
    assert pd.read_csv(io.StringIO(score_text(frame, "csv")))["value"].dtype == "float64"


class _ShortWrites(io.RawIOBase):
    """A stream that takes at most `size` bytes per write, as a pipe or a nearly full disk may."""

    def __init__(self, size: int) -> None:
        self.size, self.taken = size, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data[: self.size])
        self.taken += chunk
        return len(chunk)


@pytest.mark.parametrize("output_format", ["csv", "json", "table"])
def test_short_writes_are_continued_until_everything_is_written(output_format: str) -> None:
    frame = _frame(200)
    stream = _ShortWrites(1000)
    write_scores(frame, output_format, stream)  # type: ignore[arg-type]
    assert stream.taken.decode("utf-8") == score_text(frame, output_format) + "\n"


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
