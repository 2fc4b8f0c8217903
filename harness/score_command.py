"""`harness score --predictions FILE`: score outputs produced elsewhere and store them as a run.

The file (JSONL, JSON list, CSV/TSV, Parquet, or plain text with one segment per line) holds a
prediction per row and its reference(s), optionally a gold label (classification metrics) and a
group; references may also come from separate files, sacrebleu style. Every row is validated and
every metric computed before anything is written, so bad input leaves the store untouched.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from harness.cli_support import format_scores
from harness.errors import HarnessError
from harness.metrics.corpus import METRIC_GROUPS, CorpusScores, expand_metric_names, score_texts, uses_labels
from harness.versions import harness_version, library_version

LIBRARIES = ("sacrebleu", "rouge-score", "nltk", "scikit-learn", "numpy")


@dataclass(frozen=True)
class Row:
    prediction: str
    references: tuple[str, ...]
    label: str | None
    group: str | None


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("score", help="score predictions from a file and store them as a run")
    parser.add_argument(
        "--predictions", required=True, metavar="FILE", help=".jsonl .json .csv .tsv .parquet .txt"
    )
    parser.add_argument(
        "--references",
        action="append",
        default=[],
        metavar="FILE",
        help="references in their own file (repeatable)",
    )
    parser.add_argument(
        "--metrics", required=True, help="comma separated, e.g. bleu,chrf,rouge,token_f1,f1_macro"
    )
    parser.add_argument("--metric-args", nargs="+", default=[], metavar="METRIC.KEY=VALUE")
    parser.add_argument("--prediction-field", default="prediction")
    parser.add_argument(
        "--reference-field", action="append", default=None, help="repeatable (default: reference)"
    )
    parser.add_argument("--label-field", default=None, help="gold label for classification metrics")
    parser.add_argument("--group-field", default=None)
    parser.add_argument("--model", default=None, help="model name for the run (default: the file's stem)")
    parser.add_argument("--task", default=None, help="task name for the run (default: the file's stem)")
    parser.add_argument(
        "--store", default=None, help="results store (default $HARNESS_STORE or ./harness_store)"
    )
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap-resamples", type=int, default=1000)
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    parser.set_defaults(handler=command_score)


# -- reading ----------------------------------------------------------------------------------------


def _parse(path: Path, suffix: str, text_field: str) -> list[Any]:
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows: list[Any] = pq.read_table(path).to_pylist()
        return rows
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    if suffix == ".txt":  # sacrebleu style: one segment per line
        return [{text_field: line} for line in path.read_text(encoding="utf-8").splitlines()]
    if suffix == ".json":
        parsed = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(parsed, list):
            raise HarnessError(f"{path}: expected a JSON list of objects")
        return parsed
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as error:
                    raise HarnessError(f"{path} line {number}: not valid JSON ({error})") from None
        return rows
    raise HarnessError(
        f"{path}: unsupported file type '{suffix}' (use .jsonl, .json, .csv, .tsv, .parquet, .txt)"
    )


def _read_records(path: Path, text_field: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise HarnessError(f"no such file: {path}")
    try:
        records = _parse(path, path.suffix.lower(), text_field)
    except (OSError, ValueError, csv.Error, pa.ArrowException) as error:  # unreadable, undecodable, damaged
        raise HarnessError(f"cannot read {path}: {error}") from None
    if not records:
        raise HarnessError(f"{path} has no rows")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise HarnessError(
                f"{path} row {number}: expected an object with named fields, got {record!r:.40}"
            )
    return records


def _field(record: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in record:
        fields = ", ".join(map(str, record)) or "none"
        raise HarnessError(
            f"{where}: no field '{name}' (fields: {fields}); name it with the matching --*-field flag"
        )
    return record[name]


def _text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str):
        shown = "null" if value is None else f"{type(value).__name__} {value!r:.40}"
        raise HarnessError(f"{where}: field '{name}' must be text, got {shown}")
    return value


def _references(record: Mapping[str, Any], fields: Sequence[str], where: str) -> list[str]:
    found: list[str] = []
    for name in fields:
        value = _field(record, name, where)
        values = list(value) if isinstance(value, list | tuple | np.ndarray) else [value]
        if not values:
            raise HarnessError(f"{where}: field '{name}' is an empty list of references")
        found += [_text(item, name, where) for item in values]
    return found


def read_rows(args: argparse.Namespace, needs_references: bool, needs_labels: bool) -> list[Row]:
    predictions_path = Path(args.predictions)
    records = _read_records(predictions_path, args.prediction_field)
    reference_fields = args.reference_field or ["reference"]
    extra: list[list[dict[str, Any]]] = []
    for path_text in args.references:
        more = _read_records(Path(path_text), reference_fields[0])
        if len(more) != len(records):
            raise HarnessError(
                f"{predictions_path} has {len(records)} predictions "
                f"but {path_text} has {len(more)} references"
            )
        extra.append(more)
    rows = []
    for index, record in enumerate(records):
        where = f"{predictions_path} row {index + 1}"
        prediction = _text(_field(record, args.prediction_field, where), args.prediction_field, where)
        references: list[str] = []
        if needs_references or args.reference_field or extra:
            for source, path_text in zip(extra, args.references, strict=True):
                references += _references(source[index], reference_fields, f"{path_text} row {index + 1}")
            if not extra:
                references = _references(record, reference_fields, where)
        label = None
        if args.label_field is not None:
            value = _field(record, args.label_field, where)
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise HarnessError(
                    f"{where}: label field '{args.label_field}' must be text or an integer, got {value!r}"
                )
            label = str(value)
        elif needs_labels:
            if len(references) != 1:
                raise HarnessError(
                    f"{where} has {len(references)} references; classification metrics need one gold label "
                    "per row (give --label-field)"
                )
            label = references[0]
        group = None
        if args.group_field is not None:
            value = _field(record, args.group_field, where)
            if value is None or isinstance(value, list | dict):
                raise HarnessError(
                    f"{where}: group field '{args.group_field}' must be a single value, got {value!r}"
                )
            group = str(value)
        rows.append(Row(prediction, tuple(references), label, group))
    return rows


# -- metrics ----------------------------------------------------------------------------------------


def _setting(text: str) -> Any:
    try:
        return yaml.safe_load(text)  # the same typing as a task YAML: true, 3, [a, b], {k: v}
    except yaml.YAMLError:
        return text


def metric_specs(names_text: str, args_texts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Metric names (groups expanded) and their settings from --metric-args METRIC.KEY=VALUE."""
    names = expand_metric_names([name.strip() for name in names_text.split(",")])
    if not names:
        raise HarnessError("--metrics names no metric")
    settings: dict[str, dict[str, Any]] = {name: {} for name in names}
    for text in args_texts:
        target, equals, value = text.partition("=")
        name, dot, key = target.rpartition(".")
        if not equals or not dot or not name or not key:
            raise HarnessError(f"--metric-args takes METRIC.KEY=VALUE, got '{text}'")
        targets = [member for member in METRIC_GROUPS.get(name, (name,)) if member in settings]
        if not targets:
            raise HarnessError(f"--metric-args '{text}' names metric '{name}', which is not in --metrics")
        for member in targets:
            settings[member][key] = _setting(value)
    return settings


# -- the command ------------------------------------------------------------------------------------


def _provenance(args: argparse.Namespace, result: CorpusScores, task: str, wall: float) -> dict[str, Any]:
    files = [Path(args.predictions), *map(Path, args.references)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    count = len(result.statistics[0])
    return {
        "source": "harness score",
        "files": [str(path) for path in files],
        "files_sha256": digest.hexdigest(),
        "fields": {
            "prediction": args.prediction_field,
            "reference": args.reference_field or ["reference"],
            "label": args.label_field,
            "group": args.group_field,
        },
        "metrics": {metric.name: metric.signature() for metric in result.metrics},
        "seed": args.seed,
        "bootstrap_resamples": args.bootstrap_resamples,
        "harness": harness_version(),
        "libraries": {name: library_version(name) for name in LIBRARIES},
        "python": platform.python_version(),
        "host": platform.node(),
        "cost": {
            task: {"wall_seconds": wall, "samples": count, "samples_per_second": count / max(wall, 1e-9)}
        },
    }


def command_score(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.store import (
        ResultStore,
        RunRecord,
        SampleRecord,
        ScoreRecord,
        default_store_path,
        new_run_id,
    )

    started = time.perf_counter()
    if args.bootstrap_resamples < 0:
        raise HarnessError("--bootstrap-resamples must be 0 or more")
    store = ResultStore(Path(args.store) if args.store else default_store_path())
    store.runs()  # a path that is not a store, or a newer store, fails before any work
    specs = metric_specs(args.metrics, args.metric_args)
    needs_labels = any(uses_labels(name) for name in specs)  # also rejects unknown names, early
    needs_references = args.label_field is None or not all(uses_labels(name) for name in specs)
    rows = read_rows(args, needs_references, needs_labels)
    result = score_texts(
        list(specs),
        [row.prediction for row in rows],
        [row.references for row in rows] if needs_references else None,
        [row.label or "" for row in rows] if needs_labels else None,
        settings=specs,
        bootstrap_resamples=args.bootstrap_resamples,
        seed=args.seed,
    )

    stem = Path(args.predictions).stem
    task, model, run_id = args.task or stem, args.model or stem, new_run_id()
    # Runs scored against the same references share a task version, so they compare as one task.
    gold = json.dumps([[row.references, row.label] for row in rows], ensure_ascii=False)
    version = "refs-" + hashlib.sha256(gold.encode("utf-8")).hexdigest()[:12]
    group_scores = []
    if args.group_field is not None:
        from harness.fairness import prediction_group_scores

        group_scores = prediction_group_scores(
            result.metrics,
            result.statistics,
            [row.group for row in rows],
            labels=[row.label for row in rows] if needs_labels else None,
            predictions=[row.prediction for row in rows],
            group_field=args.group_field,
            bootstrap_resamples=args.bootstrap_resamples,
            seed=args.seed,
            where=f"harness score {args.predictions}",
        )
    # A Score has exactly the fields a ScoreRecord adds to its run, task and task version.
    scores = [
        ScoreRecord(run_id=run_id, task=task, task_version=version, **asdict(s))
        for s in (*result.scores, *group_scores)
    ]
    samples = [
        SampleRecord(
            run_id=run_id,
            task=task,
            doc_id=index,
            prompt="",
            target=row.label if row.label is not None else (row.references or ("",))[0],
            prediction=row.prediction,
            choice_logprobs=None,
            statistics=result.sample_statistics(index),
            group=row.group,
            # The target column holds the label (or the only reference); other references go here.
            metadata={"references": list(row.references)}
            if len(row.references) > 1 or (row.label is not None and row.references)
            else {},
        )
        for index, row in enumerate(rows)
    ]
    wall = time.perf_counter() - started
    provenance = _provenance(args, result, task, wall)
    run = RunRecord(
        run_id=run_id,
        created_at=datetime.now(UTC),
        model=model,
        model_fingerprint=f"predictions-sha256:{provenance['files_sha256']}",
        experiment=args.experiment,
        step=args.step,
        tasks=(task,),
        provenance=provenance,
    )
    store.write_run(run, scores, samples)

    frame = pd.DataFrame([record.__dict__ for record in scores])
    frame.insert(1, "model", model)
    if args.format == "table":  # per-class rows get their own table below
        frame = frame[~frame["metric"].str.contains("[", regex=False)]
    print(format_scores(frame, args.format))
    if args.format == "table" and result.per_class is not None:
        print("\nper class:\n" + result.per_class.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    sys.stderr.write(
        f"run {run_id}: {len(rows)} predictions, {len(result.metrics)} metrics, {wall:.1f} s; "
        f"stored in {store.root}\n"
    )
    return 0
