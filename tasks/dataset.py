"""Local task data: JSON / JSON Lines, CSV and Parquet files, one list of documents per split."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.tasks.config import TaskConfig

Document = dict[str, Any]


def _read_json(path: Path) -> list[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise HarnessError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise HarnessError(f"{path}: cannot read: {error.strerror}") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise HarnessError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None
        rows = list(data)
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise HarnessError(f"{path}: invalid JSON on line {number}: {error.msg}") from None
    for row in rows:
        if not isinstance(row, dict):
            raise HarnessError(f"{path}: each record must be a JSON object")
    return rows


def _read_table(path: Path) -> list[Document]:
    try:
        frame = pd.read_csv(path, keep_default_na=False) if path.suffix == ".csv" else pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise HarnessError(f"{path}: cannot read data file: {str(error).splitlines()[0]}") from None
    records: list[Document] = []
    for row in frame.to_dict(orient="records"):
        records.append({str(key): _plain(value) for key, value in row.items()})
    return records


def _plain(value: Any) -> Any:
    """numpy scalars and arrays from pandas become plain Python values, as in JSON-loaded data."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


def read_data_file(path: Path, dataset_path: str) -> list[Document]:
    if not path.exists():
        raise HarnessError(f"data file not found: {path}")
    kind = dataset_path if dataset_path in {"json", "csv", "parquet"} else path.suffix.lstrip(".")
    if kind in {"json", "jsonl"}:
        return _read_json(path)
    if kind in {"csv", "parquet"}:
        return _read_table(path)
    raise HarnessError(f"{path}: unsupported data format '{kind}' (use json, jsonl, csv or parquet)")


def load_split(config: TaskConfig, split: str) -> list[Document]:
    if config.data_files is None or split not in config.data_files:
        known = ", ".join(sorted(config.data_files or {})) or "none"
        raise HarnessError(f"task '{config.task}' has no split '{split}' in its data files (splits: {known})")
    documents: list[Document] = []
    for path in config.data_files[split]:
        documents.extend(read_data_file(path, config.dataset_path))
    return documents


# The seeds lm-eval's simple_evaluate gives Python's and numpy's global generators before it loads tasks.
LM_EVAL_RANDOM_SEED = 0
LM_EVAL_NUMPY_SEED = 1234


@contextmanager
def _lm_eval_seeds() -> Iterator[None]:
    """The global generators seeded as lm-eval seeds them, and given back to the caller as they were.

    Some process_docs hooks draw from the global generators (leaderboard_gpqa shuffles the options).
    Seeded, they give the same documents on every run, and lm-eval's own documents when the task is the
    first it loads (lm-eval seeds once per run, and its `datasets` cache reuses a split's first result).
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    random.seed(LM_EVAL_RANDOM_SEED)
    np.random.seed(LM_EVAL_NUMPY_SEED)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def apply_process_docs(
    process_docs: Callable[[Any], Any], documents: list[Document], task: str
) -> list[Document]:
    """Run a task's `process_docs` hook the way lm-eval does: on a `datasets.Dataset` of the split."""
    import datasets  # heavy; only tasks with a process_docs hook need it

    dataset = datasets.Dataset.from_list(documents)
    try:
        with _lm_eval_seeds():
            processed = process_docs(dataset)
    except Exception as error:  # the task's own code failed
        raise HarnessError(f"task '{task}': process_docs failed: {type(error).__name__}: {error}") from None
    if isinstance(processed, datasets.Dataset):
        return [dict(row) for row in processed]
    if isinstance(processed, list) and all(isinstance(row, dict) for row in processed):
        return processed
    raise HarnessError(f"task '{task}': process_docs must return a dataset or a list of documents")
