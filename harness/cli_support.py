"""What `harness.cli` and its command modules (`harness/*_command.py`) share: reading `--model-args` and
printing score tables. It sits below all of them, so a command module never imports the CLI that loads it."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.metric_names import lm_eval_key, split_metric_name

if TYPE_CHECKING:
    import pandas as pd

SEED_MAX = 2**32 - 1


def seed_arg(text: str) -> int:
    """argparse type of every `--seed`: a whole number from 0 to 2**32 - 1 (numpy's seed range)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {SEED_MAX}, got '{text}'")
    return value


def batch_size_arg(text: str) -> str:
    """argparse type of `--batch-size`: a positive whole number or `auto` (kept as text for --model-args)."""
    if text.strip().lower() == "auto":
        return "auto"
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number or auto, got '{text}'")
    return str(int(text))


# Bounds past which a numeric flag is a typo, not a setting: refused at parse time (one line, exit 2),
# before any model runs. A step past 2**63 - 1 cannot be stored (it once failed after the whole
# evaluation), a trillion bootstrap resamples exhaust memory, and NaN is no threshold (every comparison
# with it is false, so a gate with `--max-drop nan` passed everything).
STEP_MAX = 2**63 - 1  # the store's step column is a signed 64-bit integer
# Far beyond what an interval needs; each resample costs memory in proportion to the documents.
RESAMPLES_MAX = 1_000_000


def _whole(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def step_arg(text: str) -> int:
    """`--step`: a training step, 0 to 2**63 - 1."""
    value = _whole(text)
    if value is None or not 0 <= value <= STEP_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {STEP_MAX}, got '{text}'")
    return value


def resamples_arg(minimum: int) -> Callable[[str], int]:
    """`--resamples` / `--bootstrap-resamples`: a whole number from `minimum` to RESAMPLES_MAX."""

    def parse(text: str) -> int:
        value = _whole(text)
        if value is None or not minimum <= value <= RESAMPLES_MAX:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {minimum} to {RESAMPLES_MAX:,}, got '{text}'"
            )
        return value

    return parse


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def finite_float_arg(text: str) -> float:
    """A threshold (`--max-drop`, `--alpha`, `--confidence`): any finite number; its range is checked
    by the command, which knows it."""
    value = _float(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be a finite number, got '{text}'")
    return value


def seconds_arg(minimum: float, inclusive: bool) -> Callable[[str], float]:
    """A duration in seconds: finite, and above (or, `inclusive`, at least) `minimum`."""

    def parse(text: str) -> float:
        value = _float(text)
        if value is None or value < minimum or (value == minimum and not inclusive):
            bound = f"{'at least' if inclusive else 'more than'} {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be a number of seconds, {bound}, got '{text}'")
        return value

    return parse


SCORE_COLUMNS = ["run_id", "model", "task", "metric", "value", "stderr", "ci_low", "ci_high", "n"]


def parse_model_args(pairs: Sequence[str]) -> dict[str, str]:
    """`--model-args KEY=VALUE ...` as a mapping."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise HarnessError(f"--model-args takes key=value pairs, got '{pair}'")
        parsed[key.strip()] = value.strip()
    return parsed


def parse_generation_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """`--gen-kwargs temperature=0 max_gen_toks=64` (or lm-eval's `temperature=0,max_gen_toks=64`), typed
    as YAML reads a scalar: numbers, booleans and strings."""
    import yaml

    parsed: dict[str, Any] = {}
    for item in items:
        for pair in item.split(","):
            key, separator, value = pair.partition("=")
            if not separator or not key.strip():
                raise HarnessError(f"--gen-kwargs takes key=value pairs, got '{pair}'")
            try:
                parsed[key.strip()] = yaml.safe_load(value.strip()) if value.strip() else ""
            except yaml.YAMLError:
                parsed[key.strip()] = value.strip()
    return parsed


def _csv_fields(texts: Iterable[str]) -> list[str]:
    """Each text as one field, quoted exactly as pandas' `to_csv` (the `csv` module) quotes it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = []
    for text in texts:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([text, ""])  # two fields: a lone empty field would be written as ""
        fields.append(buffer.getvalue()[: -len(",\n")])
    return fields


def _csv_text(frame: pd.DataFrame) -> str:
    """`frame.to_csv(index=False)`, byte for byte, at a fraction of its cost on many rows.

    pandas formats every cell through its own machinery; here floats are `repr` (what pandas writes
    too), integers `str`, and each distinct string is quoted once and looked up by its code. Columns
    of any other kind (dates, float32, mixed objects) go through pandas as before."""
    import numpy as np
    import pandas as pd

    if len(frame.columns) < 2 or frame.empty:
        return str(frame.to_csv(index=False))  # the edge cases of quoting stay pandas' own
    columns: list[list[str]] = []
    for name in frame.columns:
        column = frame[name]
        if column.dtype == "float64":
            numbers = column.to_numpy()
            texts = list(map(repr, numbers.tolist()))
            for index in np.flatnonzero(np.isnan(numbers)).tolist():
                texts[index] = ""
        elif column.dtype.kind in "iub" and not column.hasnans:
            texts = list(map(str, column.to_numpy().tolist()))
        elif str(column.dtype) in ("str", "string") or (
            column.dtype == object and all(isinstance(v, str) or v is None for v in column.unique())
        ):
            codes, uniques = pd.factorize(column)
            # Code -1 (a missing value) takes the last entry: an empty field.
            quoted = np.array([*_csv_fields(str(u) for u in uniques), ""], dtype=object)
            texts = quoted[codes].tolist()
        else:
            return str(frame.to_csv(index=False))
        columns.append(texts)
    header = ",".join(_csv_fields(str(name) for name in frame.columns))
    return header + "\n" + "\n".join(map(",".join, zip(*columns, strict=True))) + "\n"


def format_scores(frame: pd.DataFrame, output_format: str) -> str:
    columns = [c for c in SCORE_COLUMNS if c in frame.columns]
    frame = frame[columns]
    if output_format in ("json", "csv") and "metric" in frame.columns:
        # Scripts written against lm-eval's results read `metric,filter` keys; give them both parts too.
        # A store holds few distinct metric names and many rows: parse each name once.
        names = frame["metric"].unique()
        frame = frame.assign(
            filter=frame["metric"].map({name: split_metric_name(str(name))[1] for name in names}),
            lm_eval_key=frame["metric"].map({name: lm_eval_key(str(name)) for name in names}),
        )
    if output_format == "json":
        return json.dumps(json.loads(frame.to_json(orient="records", double_precision=15)), indent=2)
    if output_format == "csv":
        return _csv_text(frame).rstrip("\n")
    if frame.empty:
        return "(no scores)"
    shown = frame.drop(columns=["run_id"]) if frame["run_id"].nunique() == 1 else frame
    return str(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


__all__ = [
    "RESAMPLES_MAX",
    "SCORE_COLUMNS",
    "SEED_MAX",
    "STEP_MAX",
    "batch_size_arg",
    "finite_float_arg",
    "format_scores",
    "parse_generation_kwargs",
    "parse_model_args",
    "resamples_arg",
    "seconds_arg",
    "seed_arg",
    "step_arg",
]
