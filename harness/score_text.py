"""Score rows as the text `harness scores`, `run` and `score` print: CSV, JSON or an aligned table.

A store at team scale lists hundreds of thousands of score rows, and formatting them cell by cell in
Python (or through pandas' `to_csv`/`to_string`) costs seconds. Here every column becomes one array
of cell texts through Arrow's compute kernels (numbers cast or rounded in C++, each distinct string
quoted once and looked up by its code), the columns are joined row-wise by a kernel too, and the
document is the joined array's data buffer: Python touches only the distinct strings.

Numbers keep full precision in CSV and JSON (shortest text that reads back to the same double, so
`0.00001` or `2.5e-7` rather than Python's `1e-05`, and `0.0` for a whole number); NaN and infinities
are empty in CSV, `null` in JSON; the table shows Python's four-decimal text of each number."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd

TABLE_DECIMALS = 4
# Above this magnitude `value * 10**TABLE_DECIMALS` no longer fits an int64 exactly: Python formats it.
_FIXED_POINT_LIMIT = 1e14


def _literal(text: str) -> pa.Scalar:
    """A constant for the join kernels, which take only the large_string type every cell text has."""
    return pa.scalar(text, pa.large_string())


def _csv_quoted(texts: Iterable[str]) -> list[str]:
    """Each text as one CSV field, quoted as the `csv` module (and pandas' `to_csv`) quote it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = []
    for text in texts:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([text, ""])  # two fields: a lone empty field would be written as ""
        fields.append(buffer.getvalue()[: -len(",\n")])
    return fields


def _through_dictionary(
    column: pa.Array, render: Callable[[list[object]], list[str]], missing: str
) -> pa.Array:
    """`render` applied to each distinct value once; every cell then looks its text up by code."""
    encoded = pc.dictionary_encode(column)
    texts = pa.array(render(encoded.dictionary.to_pylist()), pa.large_string())
    return pc.fill_null(pc.take(texts, encoded.indices), missing)


def _shortest_floats(column: pa.Array, missing: str) -> pa.Array:
    """Shortest round-trip text of each double, a whole number with `.0` (`0.0`, `206.0`: still a
    float to a JSON or CSV reader); NaN, infinities and nulls as `missing`."""
    finite = pc.fill_null(pc.is_finite(column), False)
    texts = pc.cast(column, pa.large_string())
    whole = pc.and_(finite, pc.fill_null(pc.equal(column, pc.floor(column)), False))
    if pc.any(whole).as_py():  # found by value first: a text search over every row costs more
        plain = pc.and_(whole, pc.invert(pc.match_substring(texts, "e")))  # 1e+16 stays as it is
        texts = pc.if_else(plain, pc.binary_join_element_wise(texts, _literal(".0"), _literal("")), texts)
    return pc.if_else(finite, texts, _literal(missing))


def _fixed_decimals(column: pa.Array) -> pa.Array:
    """`f"{value:.4f}"` for each double, in kernels: round `value * 10**4` to an integer, print its
    digits and put the point back. NaN shows as pandas shows it; huge values and near-ties go through
    Python."""
    column = pc.cast(column, pa.float64())
    finite = pc.fill_null(pc.is_finite(column), False)
    ordinary = pc.and_(finite, pc.less(pc.abs(pc.fill_null(column, 0.0)), _FIXED_POINT_LIMIT))
    safe = pc.if_else(ordinary, column, 0.0)
    product = pc.multiply(safe, float(10**TABLE_DECIMALS))
    scaled = pc.cast(pc.round(product), pa.int64())
    digits = pc.utf8_lpad(pc.cast(pc.abs(scaled), pa.large_string()), TABLE_DECIMALS + 1, "0")
    text = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(digits, 0, -TABLE_DECIMALS),
        pc.utf8_slice_codeunits(digits, -TABLE_DECIMALS),
        _literal("."),
    )
    # Signed by the value, not the rounded integer: -0.00004 shows as Python shows it, -0.0000 (a
    # negative zero shows as 0.0000).
    text = pc.if_else(
        pc.less(safe, 0.0), pc.binary_join_element_wise(_literal("-"), text, _literal("")), text
    )
    # Where value * 10**4 lies (all but) halfway between two integers, the product's rounding can
    # differ from the decimal rounding Python does on the exact value: those go through Python too.
    magnitude = pc.abs(product)
    near_tie = pc.less(pc.abs(pc.subtract(pc.subtract(magnitude, pc.floor(magnitude)), 0.5)), 1e-6)
    unusual = pc.or_(pc.invert(ordinary), near_tie)
    if pc.any(unusual).as_py():
        values = pc.filter(column, unusual).to_pylist()
        rendered = ["NaN" if v is None or v != v else f"{v:.{TABLE_DECIMALS}f}" for v in values]
        text = pc.replace_with_mask(text, unusual, pa.array(rendered, pa.large_string()))
    return text


def _cells(column: pa.Array, output_format: str) -> pa.Array:
    """One text per cell of `column` for `output_format`."""
    kind = column.type
    missing = "null" if output_format == "json" else ("NaN" if output_format == "table" else "")
    if pa.types.is_floating(kind):
        return _fixed_decimals(column) if output_format == "table" else _shortest_floats(column, missing)
    if pa.types.is_integer(kind):
        return pc.fill_null(pc.cast(column, pa.large_string()), missing)
    if output_format == "json":
        return _through_dictionary(column, lambda values: [json.dumps(_plain(v)) for v in values], missing)
    if output_format == "csv":
        return _through_dictionary(column, lambda values: _csv_quoted(_text(v) for v in values), missing)
    return _through_dictionary(column, lambda values: [_visible(_text(v)) for v in values], missing)


def _plain(value: object) -> object:
    """A JSON-ready value: booleans and strings stay, anything else (a date…) becomes its text."""
    return value if isinstance(value, (bool, str)) else _text(value)


def _visible(text: str) -> str:
    """`text` for a terminal: control characters (a newline, an escape sequence someone put in a model
    name) shown as escapes, so they neither break the table's lines nor reach the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # what pandas prints
    return str(value)


def _document(rows: pa.Array) -> memoryview:
    """The texts of `rows` (a large_string array) back to back: a view of its data buffer, no copy."""
    if len(rows) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)
    start, end = int(offsets[rows.offset]), int(offsets[rows.offset + len(rows)])
    return memoryview(rows.buffers()[2])[start:end]


def _interleaved(texts: list[str], cells: list[pa.Array]) -> memoryview:
    """texts[0] + cells[0] + texts[1] + cells[1] + ... + texts[-1] for each row, rows back to back:
    one kernel pass, so a listing of a whole store is copied once."""
    parts: list[pa.Array | pa.Scalar] = []
    for text, column in zip(texts, cells, strict=False):
        parts += [_literal(text), column]
    return _document(pc.binary_join_element_wise(*parts, _literal(texts[-1]), _literal("")))


def _columns(table: pa.Table) -> list[pa.Array]:
    """Each column as one contiguous array (so a column's distinct values share one dictionary)."""
    return [column.combine_chunks() for column in table.columns]


Pieces = list[bytes | memoryview]


def _csv(table: pa.Table) -> Pieces:
    header = ",".join(_csv_quoted(table.column_names)) + "\n"
    if table.num_rows == 0:
        return [header.encode()]
    cells = [_cells(column, "csv") for column in _columns(table)]
    return [header.encode(), _interleaved(["", *[","] * (len(cells) - 1), "\n"], cells)]


def _json(table: pa.Table) -> Pieces:
    """`json.dumps(records, indent=2)`'s layout."""
    if table.num_rows == 0:
        return [b"[]\n"]
    keys = [f"    {json.dumps(name)}: " for name in table.column_names]
    texts = ["  {\n" + keys[0], *(",\n" + key for key in keys[1:]), "\n  },\n"]
    records = _interleaved(texts, [_cells(column, "json") for column in _columns(table)])
    return [b"[\n", records[: -len(",\n")], b"\n]\n"]


def _aligned(table: pa.Table) -> Pieces:
    """Columns of text left-aligned, numbers right-aligned, two spaces apart."""
    if table.num_rows == 0:
        return [b"(no scores)\n"]
    columns = []
    for name, column in zip(table.column_names, _columns(table), strict=True):
        cells = _cells(column, "table")
        width = max(len(name), int(pc.max(pc.utf8_length(cells)).as_py() or 0))
        numeric = pa.types.is_floating(column.type) or pa.types.is_integer(column.type)
        pad = pc.utf8_lpad if numeric else pc.utf8_rpad
        columns.append((pad(pa.array([name], pa.large_string()), width)[0].as_py(), pad(cells, width)))
    header = "  ".join(title for title, _ in columns).rstrip() + "\n"
    # The last column's padding is trimmed from every line, as it is from the header.
    last_title, last_cells = columns[-1]
    columns[-1] = (last_title, pc.utf8_rtrim_whitespace(last_cells))
    texts = ["", *["  "] * (len(columns) - 1), "\n"]
    return [header.encode(), _interleaved(texts, [cells for _, cells in columns])]


def as_table(rows: pa.Table | pd.DataFrame) -> pa.Table:
    """Score rows as an Arrow table (a DataFrame is converted; a table is returned as it is)."""
    if isinstance(rows, pa.Table):
        return rows
    mixed = [name for name in rows.columns if rows[name].dtype == object]
    if mixed:  # objects of several kinds have no Arrow type: show each as its text, as pandas would
        rows = rows.assign(**{name: rows[name].map(lambda v: v if v is None else _text(v)) for name in mixed})
    return pa.Table.from_pandas(rows, preserve_index=False)


def _pieces(rows: pa.Table | pd.DataFrame, output_format: str) -> Pieces:
    table = as_table(rows)
    if output_format == "csv":
        return _csv(table)
    if output_format == "json":
        return _json(table)
    return _aligned(table)


def score_text(rows: pa.Table | pd.DataFrame, output_format: str) -> str:
    """`rows` as CSV (header row, full precision), JSON (a list of records) or a table, without the
    final newline (for `print`)."""
    return b"".join(_pieces(rows, output_format)).decode("utf-8").removesuffix("\n")


def write_scores(rows: pa.Table | pd.DataFrame, output_format: str, stream: BinaryIO) -> None:
    """`score_text(rows, output_format)` and a newline, written to `stream` straight from the
    buffers the kernels filled (a listing of a whole store is tens of megabytes)."""
    for piece in _pieces(rows, output_format):
        view = memoryview(piece)
        while view:
            # A short write (a pipe whose reader left, a file size limit, a full disk) is not an error
            # by itself: writing the rest is what raises it.
            view = view[stream.write(view) or 0 :]
    stream.flush()


__all__ = ["TABLE_DECIMALS", "as_table", "score_text", "write_scores"]
