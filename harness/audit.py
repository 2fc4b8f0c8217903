"""`harness.audit_data(...)`: who is in a data set, and with which labels (`harness audit` runs it).

Before a model is evaluated or trained on a data set, the data itself can be skewed: a group that
is barely there, or one whose examples mostly carry one label. The audit reads a file (JSONL, JSON,
CSV, Parquet), and for each group field, and each intersection of fields, reports:

- representation: each group's share of the rows with a Wilson interval (scipy's
  `binomtest(...).proportion_ci(method="wilson")`), its expected share (equal shares for a field
  alone, the product of the marginal shares for an intersection, i.e. what independence predicts)
  and their ratio. A group is flagged `under_represented` when even the upper end of its interval
  is below `min_ratio` x expected, else `too_small` when it has fewer than `min_group_size` rows;
  combinations of values that never occur are listed with 0 rows and flagged `missing`.
- label balance (with `label_field`): the share of each label in each group, between-group
  difference and ratio with bootstrap intervals and permutation p-values (`harness.fairness`).

The result is stored as a run (model `data:<file>`, fingerprint = the file's sha256, task
`audit/<file>`), so it shows on the leaderboard's Fairness page next to model runs.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.errors import HarnessError
from harness.fairness import group_scores
from harness.fairness.groups import MIN_GROUP_SIZE, group_value
from harness.fairness.intersections import JOIN
from harness.fairness.intersections import label as cell_label
from harness.metrics import SampleOutcome, Score
from harness.metrics.base import mean_of_first
from harness.signatures import make_signature
from harness.store import (
    ResultStore,
    RunSettings,
    TaskResults,
    assemble_run,
    default_store_path,
    normalise_tags,
    record_provenance,
)
from harness.versions import library_version

# Flag a group whose share's upper confidence bound is below this fraction of its expected share.
MIN_RATIO = 0.5
FLAGS = ("missing", "too_small", "under_represented")


@dataclass(frozen=True)
class Representation:
    """One group (or intersection cell) of the data."""

    fields: tuple[str, ...]
    group: str
    count: int
    total: int  # rows with a value in every field of `fields`
    share: float
    ci_low: float
    ci_high: float
    expected: float
    flag: str | None  # one of FLAGS, or None

    @property
    def ratio(self) -> float:
        return self.share / self.expected if self.expected > 0 else math.nan


@dataclass(frozen=True)
class DataAudit:
    source: Path
    rows: int
    group_fields: tuple[str, ...]
    label_field: str | None
    representation: tuple[Representation, ...]
    label_scores: tuple[Score, ...]  # `group/label=<value>/<group>` and `fairness/label=<value>/...`
    settings: dict[str, Any]

    @property
    def flagged(self) -> tuple[Representation, ...]:
        return tuple(row for row in self.representation if row.flag is not None)

    def table(self) -> pd.DataFrame:
        records = [
            {
                "fields": JOIN.join(row.fields),
                "group": row.group,
                "count": row.count,
                "share": row.share,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "expected": row.expected,
                "ratio": row.ratio,
                "flag": row.flag or "",
            }
            for row in self.representation
        ]
        return pd.DataFrame(records)


@dataclass(frozen=True)
class AuditReport:
    run_id: str
    audit: DataAudit
    scores: tuple[Score, ...]
    store: Path | None
    wall_seconds: float


def read_table(path: str | Path) -> pd.DataFrame:
    """The rows of a JSONL, JSON, CSV/TSV or Parquet file; any problem is one HarnessError line."""
    file = Path(path)
    if not file.is_file():
        raise HarnessError(f"no such file: {file}")
    suffix = file.suffix.lower()
    try:
        if suffix == ".jsonl":
            frame = pd.read_json(file, lines=True, dtype=False)
        elif suffix == ".json":
            frame = pd.read_json(file, dtype=False)
        elif suffix in (".csv", ".tsv"):
            frame = pd.read_csv(file, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        elif suffix == ".parquet":
            frame = pd.read_parquet(file)
        else:
            raise HarnessError(
                f"{file}: unsupported file type '{suffix}' (use .jsonl, .json, .csv, .tsv, .parquet)"
            )
    except HarnessError:
        raise
    except (OSError, ValueError, pa.ArrowException) as error:  # unreadable, undecodable, damaged
        detail = " ".join(str(error).split()) or type(error).__name__
        raise HarnessError(f"cannot read {file}: {detail}") from None
    if frame.empty:
        raise HarnessError(f"{file} has no rows")
    return frame


def _values(frame: pd.DataFrame, name: str, source: Path) -> list[str | None]:
    if name not in frame.columns:
        listed = ", ".join(map(str, frame.columns))
        raise HarnessError(f"{source}: no field '{name}' (fields: {listed})")
    values = [_cell(value) for value in frame[name].tolist()]
    return values


def _cell(value: object) -> str | None:
    if isinstance(value, str) and value == "":
        return None  # an empty CSV cell has no value
    if isinstance(value, list | dict | np.ndarray):
        raise HarnessError(f"group and label fields must hold single values, got {value!r:.40}")
    return group_value(value)


def wilson_interval(count: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of count / total (scipy's proportion_ci(method='wilson'))."""
    from scipy.stats import norm

    if total == 0:
        return math.nan, math.nan
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    share = count / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def _representation(
    columns: dict[str, list[str | None]],
    fields: tuple[str, ...],
    min_group_size: int,
    min_ratio: float,
    confidence: float,
) -> list[Representation]:
    present = [all(columns[name][i] is not None for name in fields) for i in range(len(columns[fields[0]]))]
    total = sum(present)
    rows = [tuple(str(columns[name][i]) for name in fields) for i, keep in enumerate(present) if keep]
    counts: dict[tuple[str, ...], int] = {}
    for row in rows:
        counts[row] = counts.get(row, 0) + 1
    marginals = [
        {
            value: sum(1 for row in rows if row[k] == value) / total
            for value in sorted({row[k] for row in rows})
        }
        for k in range(len(fields))
    ]
    found = []
    for cell in itertools.product(*(sorted(m) for m in marginals)):
        count = counts.get(cell, 0)
        if len(fields) == 1:
            expected = 1.0 / len(marginals[0])
        else:
            expected = float(np.prod([marginals[k][value] for k, value in enumerate(cell)]))
        low, high = wilson_interval(count, total, confidence)
        if count == 0:
            flag: str | None = "missing"
        elif high < min_ratio * expected:  # the finding that matters, however small the group
            flag = "under_represented"
        elif count < min_group_size:
            flag = "too_small"
        else:
            flag = None
        name = (
            str(cell[0])
            if len(fields) == 1 and len(columns) == 1
            else cell_label(fields, [str(v) for v in cell])
        )
        found.append(Representation(fields, name, count, total, count / total, low, high, expected, flag))
    return found


@dataclass(frozen=True)
class _LabelShare:
    """The share of rows carrying one label: a mean of 0/1, so group rows come from `group_scores`."""

    label: str
    higher_is_better = True
    statistic_names = ("match", "count")
    output_types = frozenset({"generate_until", "multiple_choice", "loglikelihood", "loglikelihood_rolling"})
    is_mean = True

    @property
    def name(self) -> str:
        return f"label={self.label}"

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        # The label sits where a document's gold answer would.
        return (float(outcome.target == self.label), 1.0)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return mean_of_first(totals)

    def signature(self) -> str:
        return make_signature(self.name, {"label": self.label})


def audit_data(
    path: str | Path,
    group_fields: Sequence[str],
    label_field: str | None = None,
    *,
    min_group_size: int = MIN_GROUP_SIZE,
    min_ratio: float = MIN_RATIO,
    confidence: float = 0.95,
    bootstrap_resamples: int = 1000,
    permutations: int = 1000,
    seed: int = 0,
) -> DataAudit:
    """Representation and label balance of `path`'s rows by `group_fields` (each alone and every
    intersection). Raises HarnessError (one line) for an unreadable file, a missing field, or a
    field with fewer than two groups."""
    fields = tuple(dict.fromkeys(group_fields))
    if not fields:
        raise HarnessError("name at least one --group-field")
    if not 0 < min_ratio <= 1:
        raise HarnessError("--min-ratio must be above 0 and at most 1")
    if min_group_size < 1:
        raise HarnessError("--min-group-size must be 1 or more")
    source = Path(path)
    frame = read_table(source)
    columns = {name: _values(frame, name, source) for name in fields}
    for name, values in columns.items():
        groups = sorted({value for value in values if value is not None})
        if len(groups) < 2:
            only = f"one group only ('{groups[0]}')" if groups else "no values"
            raise HarnessError(f"{source}: field '{name}' has {only}; an audit compares two groups or more")
    labels = _values(frame, label_field, source) if label_field is not None else None
    representation = [
        row
        for order in range(1, len(fields) + 1)
        for combination in itertools.combinations(fields, order)
        for row in _representation(columns, combination, min_group_size, min_ratio, confidence)
    ]
    label_rows: list[Score] = []
    if labels is not None:
        label_values = sorted(str(value) for value in set(labels) if value is not None)
        if not label_values:
            raise HarnessError(f"{source}: field '{label_field}' has no values")
        kept = [i for i, value in enumerate(labels) if value is not None]
        metrics = [_LabelShare(value) for value in label_values]
        statistics = [
            np.array([[float(labels[i] == value), 1.0] for i in kept], dtype=np.float64)
            for value in label_values
        ]
        label_rows = group_scores(
            metrics,
            statistics,
            {name: [columns[name][i] for i in kept] for name in fields},
            group_field=None,
            bootstrap_resamples=bootstrap_resamples,
            seed=seed,
            confidence=confidence,
            min_group_size=min_group_size,
            permutations=permutations,
            where=f"audit {source.name}",
        )
    settings = {
        "group_fields": list(fields),
        "label_field": label_field,
        "min_group_size": min_group_size,
        "min_ratio": min_ratio,
        "confidence": confidence,
        "interval": "wilson",
        "expected": "equal shares (a field); independence (an intersection)",
    }
    return DataAudit(
        source, len(frame), fields, label_field, tuple(representation), tuple(label_rows), settings
    )


def _representation_scores(audit: DataAudit) -> list[Score]:
    scores = []
    for row in audit.representation:
        settings = {
            **audit.settings,
            "fields": list(row.fields),
            "group": row.group,
            "count": row.count,
            "expected_share": round(row.expected, 6),
            "ratio": round(row.ratio, 6) if math.isfinite(row.ratio) else None,
            "flag": row.flag,
        }
        scores.append(
            Score(
                f"group/representation/{row.group}",
                row.share,
                math.sqrt(row.share * (1 - row.share) / row.total) if row.total else None,
                row.ci_low,
                row.ci_high,
                row.total,
                True,
                make_signature("representation", settings, ("scipy",)),
            )
        )
    return scores


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def audit(
    path: str | Path,
    group_fields: Sequence[str],
    label_field: str | None = None,
    *,
    store: str | Path | None = None,
    write: bool = True,
    experiment: str | None = None,
    tags: Iterable[str] = (),
    min_group_size: int = MIN_GROUP_SIZE,
    min_ratio: float = MIN_RATIO,
    bootstrap_resamples: int = 1000,
    permutations: int = 1000,
    seed: int = 0,
) -> AuditReport:
    """`audit_data`, stored as a run so the leaderboard shows it (nothing is written on bad input)."""
    started = time.perf_counter()
    run_tags = normalise_tags(tags)
    if bootstrap_resamples < 0 or permutations < 0:
        raise HarnessError("--bootstrap-resamples and --permutations must be 0 or more")
    if not 0 <= seed < 2**32:
        raise HarnessError("--seed must be a whole number from 0 to 4294967295")
    result_store = ResultStore(Path(store) if store is not None else default_store_path())
    if write:
        result_store.runs()  # a path that is no store, or a newer store, fails before any work
    found = audit_data(
        path,
        group_fields,
        label_field,
        min_group_size=min_group_size,
        min_ratio=min_ratio,
        bootstrap_resamples=bootstrap_resamples,
        permutations=permutations,
        seed=seed,
    )
    source = found.source
    digest = _digest(source)
    scores = [*_representation_scores(found), *found.label_scores]
    wall = time.perf_counter() - started
    provenance = record_provenance(
        settings=RunSettings(seed=seed, bootstrap_resamples=bootstrap_resamples),
        libraries={"scipy": library_version("scipy")},
        cost={f"audit/{source.name}": {"wall_seconds": wall, "samples": found.rows}},
        tags=run_tags,
        details={"source": "harness audit", "file": str(source), "file_sha256": digest, **found.settings},
    )
    assembled = assemble_run(
        model=f"data:{source.name}",
        model_fingerprint=f"data-sha256:{digest}",
        results=[TaskResults(f"audit/{source.name}", f"data-{digest[:12]}", scores)],
        provenance=provenance,
        experiment=experiment,
    )
    if write:
        result_store.write(assembled)
    return AuditReport(
        assembled.run.run_id,
        found,
        tuple(scores),
        result_store.root if write else None,
        time.perf_counter() - started,
    )


__all__ = [
    "FLAGS",
    "MIN_RATIO",
    "AuditReport",
    "DataAudit",
    "Representation",
    "audit",
    "audit_data",
    "read_table",
    "wilson_interval",
]
