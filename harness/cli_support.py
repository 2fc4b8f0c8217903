"""What `harness.cli` and its command modules (`harness/*_command.py`) share: reading `--model-args` and
printing score tables. It sits below all of them, so a command module never imports the CLI that loads it."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from harness.errors import HarnessError
from harness.metric_names import lm_eval_key, split_metric_name
from harness.score_text import as_table, score_text, write_scores

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


def _printed_columns(rows: pa.Table | pd.DataFrame, output_format: str) -> pa.Table:
    table = as_table(rows)
    table = table.select([c for c in SCORE_COLUMNS if c in table.column_names])
    if output_format in ("json", "csv") and "metric" in table.column_names:
        # Scripts written against lm-eval's results read `metric,filter` keys; give them both parts too.
        # A store holds few distinct metric names and many rows: parse each name once.
        metrics = pc.dictionary_encode(table["metric"]).combine_chunks()
        names = [str(name) for name in metrics.dictionary.to_pylist()]
        filters = pa.array([split_metric_name(name)[1] for name in names], pa.string())
        keys = pa.array([lm_eval_key(name) for name in names], pa.string())
        table = table.append_column("filter", pc.take(filters, metrics.indices))
        table = table.append_column("lm_eval_key", pc.take(keys, metrics.indices))
    if output_format == "table" and table.num_rows and pc.count_distinct(table["run_id"]).as_py() == 1:
        table = table.drop_columns(["run_id"])
    return table


def format_scores(frame: pa.Table | pd.DataFrame, output_format: str) -> str:
    """Score rows as `--format` asks: json, csv or an aligned table (one run's table omits its id)."""
    return score_text(_printed_columns(frame, output_format), output_format)


def print_scores(frame: pa.Table | pd.DataFrame, output_format: str) -> None:
    """`print(format_scores(...))`, written from the formatter's buffers straight to stdout's bytes."""
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream someone put in stdout's place
        print(format_scores(frame, output_format))
        return
    sys.stdout.flush()
    write_scores(_printed_columns(frame, output_format), output_format, binary)


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
    "print_scores",
    "resamples_arg",
    "seconds_arg",
    "seed_arg",
    "step_arg",
]
