"""`harness.score(...)`: score outputs produced elsewhere and store them as a run (`harness score` uses it).

The file (JSONL, JSON list, CSV/TSV, Parquet, or plain text with one segment per line) holds a
prediction per row and its reference(s), optionally a gold label (classification metrics) and a
group; references may also come from separate files, sacrebleu style. Every row is validated and
every metric computed before anything is written, so bad input leaves the store untouched.

    report = harness.score("outputs.jsonl", ["bleu", "chrf"], model="my-model",
                           metric_args={"bleu": {"tokenize": "intl"}})
    report.to_frame()
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.errors import HarnessError
from harness.metrics.corpus import METRIC_GROUPS, CorpusScores, expand_metric_names, score_texts, uses_labels
from harness.store import (
    Document,
    ResultStore,
    RunSettings,
    ScoreRecord,
    TaskResults,
    assemble_run,
    default_store_path,
    normalise_tags,
    record_provenance,
)
from harness.store.statistics import encode_statistics
from harness.versions import library_version

__all__ = ["PredictionRow", "ScoreReport", "metric_settings", "read_predictions", "score"]

LIBRARIES = ("sacrebleu", "rouge-score", "nltk", "scikit-learn", "numpy")


@dataclass(frozen=True)
class PredictionRow:
    prediction: str
    references: tuple[str, ...]
    label: str | None
    group: str | None


@dataclass(frozen=True)
class ScoreReport:
    run_id: str
    model: str
    task: str
    scores: tuple[ScoreRecord, ...]  # corpus metrics, per-class rows (`f1[label]`), then group rows
    per_class: pd.DataFrame | None  # label, precision, recall, f1, support (classification metrics)
    predictions: int
    metrics: int
    wall_seconds: float
    store: Path | str | None  # None when nothing was written; an s3:// store stays its URI

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([score.__dict__ for score in self.scores])


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


def read_predictions(
    predictions: str | Path,
    *,
    references: Sequence[str | Path] = (),
    prediction_field: str = "prediction",
    reference_fields: Sequence[str] | None = None,
    label_field: str | None = None,
    group_field: str | None = None,
    needs_references: bool = True,
    needs_labels: bool = False,
) -> list[PredictionRow]:
    """Every row of the predictions file (and of the reference files), validated."""
    predictions_path = Path(predictions)
    records = _read_records(predictions_path, prediction_field)
    fields = list(reference_fields or ["reference"])
    extra: list[list[dict[str, Any]]] = []
    for path_text in references:
        more = _read_records(Path(path_text), fields[0])
        if len(more) != len(records):
            raise HarnessError(
                f"{predictions_path} has {len(records)} predictions "
                f"but {path_text} has {len(more)} references"
            )
        extra.append(more)
    rows = []
    for index, record in enumerate(records):
        where = f"{predictions_path} row {index + 1}"
        prediction = _text(_field(record, prediction_field, where), prediction_field, where)
        found: list[str] = []
        if needs_references or reference_fields or extra:
            for source, path_text in zip(extra, references, strict=True):
                found += _references(source[index], fields, f"{path_text} row {index + 1}")
            if not extra:
                found = _references(record, fields, where)
        label = None
        if label_field is not None:
            value = _field(record, label_field, where)
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise HarnessError(
                    f"{where}: label field '{label_field}' must be text or an integer, got {value!r}"
                )
            label = str(value)
        elif needs_labels:
            if len(found) != 1:
                raise HarnessError(
                    f"{where} has {len(found)} references; classification metrics need one gold label "
                    "per row (give --label-field)"
                )
            label = found[0]
        group = None
        if group_field is not None:
            value = _field(record, group_field, where)
            if value is None or isinstance(value, list | dict):
                raise HarnessError(
                    f"{where}: group field '{group_field}' must be a single value, got {value!r}"
                )
            group = str(value)
        rows.append(PredictionRow(prediction, tuple(found), label, group))
    return rows


# -- metrics ----------------------------------------------------------------------------------------


def _setting(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)  # the same typing as a task YAML: true, 3, [a, b], {k: v}
    except yaml.YAMLError:
        return text


def _parse_metric_args(texts: Sequence[str]) -> list[tuple[str, str, Any, str]]:
    parsed = []
    for text in texts:
        target, equals, value = text.partition("=")
        name, dot, key = target.rpartition(".")
        if not equals or not dot or not name or not key:
            raise HarnessError(f"--metric-args takes METRIC.KEY=VALUE, got '{text}'")
        parsed.append((name, key, _setting(value), text))
    return parsed


def metric_settings(
    metrics: str | Sequence[str], metric_args: Mapping[str, Mapping[str, Any]] | Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Metric names (groups such as `rouge` expanded) and their settings, given as
    `{"bleu": {"tokenize": "intl"}}` or as the CLI's `bleu.tokenize=intl` strings."""
    names_given = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = expand_metric_names([name.strip() for name in names_given])
    if not names:
        raise HarnessError("--metrics names no metric")
    if isinstance(metric_args, Mapping):
        items = [
            (name, key, value, f"{name}.{key}={value}")
            for name, values in metric_args.items()
            for key, value in values.items()
        ]
    else:
        items = _parse_metric_args(metric_args)
    settings: dict[str, dict[str, Any]] = {name: {} for name in names}
    for name, key, value, text in items:
        targets = [member for member in METRIC_GROUPS.get(name, (name,)) if member in settings]
        if not targets:
            raise HarnessError(f"--metric-args '{text}' names metric '{name}', which is not in --metrics")
        for member in targets:
            settings[member][key] = value
    return settings


# -- scoring ----------------------------------------------------------------------------------------


def _files_digest(files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _documents(rows: Sequence[PredictionRow], result: CorpusScores) -> list[Document]:
    statistics = encode_statistics(result.metrics, result.statistics, len(rows))
    return [
        Document(
            doc_id=index,
            prompt="",
            target=row.label if row.label is not None else (row.references or ("",))[0],
            prediction=row.prediction,
            choice_logprobs=None,
            statistics=stats,
            group=row.group,
            # The target column holds the label (or the only reference); other references go here.
            metadata={"references": list(row.references)}
            if len(row.references) > 1 or (row.label is not None and row.references)
            else {},
        )
        for index, (row, stats) in enumerate(zip(rows, statistics, strict=True))
    ]


def score(
    predictions: str | Path,
    metrics: str | Sequence[str],
    *,
    references: str | Path | Sequence[str | Path] = (),
    metric_args: Mapping[str, Mapping[str, Any]] | Sequence[str] = (),
    prediction_field: str = "prediction",
    reference_fields: Sequence[str] | None = None,
    label_field: str | None = None,
    group_field: str | None = None,
    model: str | None = None,
    task: str | None = None,
    store: str | Path | None = None,
    experiment: str | None = None,
    step: int | None = None,
    tags: Iterable[str] = (),
    seed: int = 0,
    bootstrap_resamples: int = 1000,
    write: bool = True,
) -> ScoreReport:
    """Score a file of predictions against references (or gold labels) and store the run.

    `metrics` is `"bleu,chrf"` or a list; `model` and `task` default to the file's stem. With
    `group_field`, per-group and parity-gap rows are added (see `harness.fairness`).
    """
    started = time.perf_counter()
    run_tags = normalise_tags(tags)
    reference_files = [references] if isinstance(references, str | Path) else list(references)
    if isinstance(metric_args, str):
        metric_args = [metric_args]
    if bootstrap_resamples < 0:
        raise HarnessError("--bootstrap-resamples must be 0 or more")
    if not 0 <= seed < 2**32:
        raise HarnessError("--seed must be a whole number from 0 to 4294967295")
    result_store = ResultStore(Path(store) if store is not None else default_store_path())
    if write:
        result_store.runs()  # a path that is not a store, or a newer store, fails before any work
    specs = metric_settings(metrics, metric_args)
    needs_labels = any(uses_labels(name) for name in specs)  # also rejects unknown names, early
    needs_references = label_field is None or not all(uses_labels(name) for name in specs)
    rows = read_predictions(
        predictions,
        references=reference_files,
        prediction_field=prediction_field,
        reference_fields=reference_fields,
        label_field=label_field,
        group_field=group_field,
        needs_references=needs_references,
        needs_labels=needs_labels,
    )
    result = score_texts(
        list(specs),
        [row.prediction for row in rows],
        [row.references for row in rows] if needs_references else None,
        [row.label or "" for row in rows] if needs_labels else None,
        settings=specs,
        bootstrap_resamples=bootstrap_resamples,
        seed=seed,
    )

    stem = Path(predictions).stem
    task_name, model_name = task or stem, model or stem
    # Runs scored against the same references share a task version, so they compare as one task.
    gold = json.dumps([[row.references, row.label] for row in rows], ensure_ascii=False)
    version = "refs-" + hashlib.sha256(gold.encode("utf-8")).hexdigest()[:12]
    group_scores = []
    if group_field is not None:
        from harness.fairness import prediction_group_scores

        group_scores = prediction_group_scores(
            result.metrics,
            result.statistics,
            [row.group for row in rows],
            labels=[row.label for row in rows] if needs_labels else None,
            predictions=[row.prediction for row in rows],
            group_field=group_field,
            bootstrap_resamples=bootstrap_resamples,
            seed=seed,
            where=f"harness score {predictions}",
        )
    files = [Path(predictions), *map(Path, reference_files)]
    files_sha256 = _files_digest(files)
    wall = time.perf_counter() - started
    count = len(rows)
    provenance = record_provenance(
        settings=RunSettings(seed=seed, bootstrap_resamples=bootstrap_resamples),
        libraries={name: library_version(name) for name in LIBRARIES},
        cost={
            task_name: {
                "wall_seconds": wall,
                "samples": count,
                "samples_per_second": count / max(wall, 1e-9),
            }
        },
        tags=run_tags,
        details={
            "source": "harness score",
            "files": [str(path) for path in files],
            "files_sha256": files_sha256,
            "fields": {
                "prediction": prediction_field,
                "reference": list(reference_fields or ["reference"]),
                "label": label_field,
                "group": group_field,
            },
            "metrics": {metric.name: metric.signature() for metric in result.metrics},
        },
    )
    assembled = assemble_run(
        model=model_name,
        model_fingerprint=f"predictions-sha256:{files_sha256}",
        results=[TaskResults(task_name, version, (*result.scores, *group_scores), _documents(rows, result))],
        provenance=provenance,
        experiment=experiment,
        step=step,
    )
    if write:
        result_store.write(assembled)
    return ScoreReport(
        run_id=assembled.run.run_id,
        model=model_name,
        task=task_name,
        scores=assembled.scores,
        per_class=result.per_class,
        predictions=count,
        metrics=len(result.metrics),
        wall_seconds=wall,
        store=result_store.reported_root if write else None,
    )
