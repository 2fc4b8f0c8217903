"""What `harness.cli` and its command modules (`harness/*_command.py`) share: reading `--model-args` and
printing score tables. It sits below all of them, so a command module never imports the CLI that loads it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
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


def format_scores(frame: pd.DataFrame, output_format: str) -> str:
    columns = [c for c in SCORE_COLUMNS if c in frame.columns]
    frame = frame[columns]
    if output_format in ("json", "csv") and "metric" in frame.columns:
        # Scripts written against lm-eval's results read `metric,filter` keys; give them both parts too.
        frame = frame.assign(
            filter=[split_metric_name(str(name))[1] for name in frame["metric"]],
            lm_eval_key=[lm_eval_key(str(name)) for name in frame["metric"]],
        )
    if output_format == "json":
        return json.dumps(json.loads(frame.to_json(orient="records", double_precision=15)), indent=2)
    if output_format == "csv":
        return str(frame.to_csv(index=False)).rstrip("\n")
    if frame.empty:
        return "(no scores)"
    shown = frame.drop(columns=["run_id"]) if frame["run_id"].nunique() == 1 else frame
    return str(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


__all__ = [
    "SCORE_COLUMNS",
    "SEED_MAX",
    "batch_size_arg",
    "format_scores",
    "parse_generation_kwargs",
    "parse_model_args",
    "seed_arg",
]
