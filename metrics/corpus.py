"""Score lists of predictions against references or labels from Python; `harness score` uses it.

>>> from metrics import score_texts
>>> result = score_texts(["bleu", "chrf", "rougeL"], ["the cat sat"], [["the cat sat down"]])
>>> [(s.metric, round(s.value, 2)) for s in result.scores]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError
from harness.metrics.base import (
    EVALUATE_PREFIX,
    METRICS,
    Metric,
    SampleOutcome,
    Score,
    statistics_matrix,
)
from harness.metrics.classification import (
    Classification,
    ClassificationFactory,
    class_metrics,
    label_text,
    per_class_table,
)
from harness.metrics.loglikelihood import Accuracy
from harness.metrics.lookup import get_metric
from harness.metrics.uncertainty import score_many

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "METRIC_GROUPS",
    "CorpusScores",
    "build_metric",
    "expand_metric_names",
    "score_texts",
    "uses_labels",
]

# `rouge` is shorthand for the four ROUGE variants rouge-score users report together.
METRIC_GROUPS: Mapping[str, tuple[str, ...]] = {"rouge": ("rouge1", "rouge2", "rougeL", "rougeLsum")}


def expand_metric_names(names: Sequence[str]) -> list[str]:
    """Names in order, groups expanded, duplicates dropped."""
    expanded: list[str] = []
    for name in names:
        for member in METRIC_GROUPS.get(name, (name,)):
            if member and member not in expanded:
                expanded.append(member)
    return expanded


MetricSpec = str | Metric


def uses_labels(metric: MetricSpec) -> bool:
    """Classification metrics compare a predicted label with one gold label, not with references."""
    if isinstance(metric, str):
        if metric.startswith(EVALUATE_PREFIX):
            return False
        factory = METRICS.get(metric)
        return isinstance(factory, ClassificationFactory) or factory is Accuracy
    return isinstance(metric, Classification | Accuracy)


def _label_settings(
    factory: ClassificationFactory, settings: Mapping[str, Any], outcomes: Sequence[SampleOutcome]
) -> dict[str, Any]:
    """scikit-learn's default label set, the sorted union of gold and predicted labels, for a
    classification metric that declares none; binary also needs pos_label among at most two."""
    chosen = dict(settings)
    if "labels" in chosen:
        return chosen
    present = sorted(
        {label_text(outcome.target) for outcome in outcomes}
        | {label_text(outcome.prediction or "") for outcome in outcomes}
    )
    name = factory.measure if factory.average is None else f"{factory.measure}_{factory.average}"
    if (factory.average or chosen.get("average", "binary")) == "binary":
        positive = label_text(chosen.get("pos_label", 1))
        if len(present) > 2:
            raise HarnessError(
                f"{name} averages 'binary' (scikit-learn's default) but there are {len(present)} labels; "
                f"use {factory.measure}_macro, {factory.measure}_micro or {factory.measure}_weighted"
            )
        if positive not in present and len(present) == 2:
            raise HarnessError(
                f"{name}: pos_label '{positive}' is not a label ({', '.join(present)}); "
                f"set it, e.g. --metric-args {name}.pos_label={present[-1]}"
            )
        chosen["pos_label"] = positive
        present = sorted({*present, positive})
    chosen["labels"] = present
    return chosen


def build_metric(name: str, settings: Mapping[str, Any], outcomes: Sequence[SampleOutcome]) -> Metric:
    """`get_metric`, except that classification metrics without labels get the data's label set."""
    factory = None if name.startswith(EVALUATE_PREFIX) else METRICS.get(name)
    if isinstance(factory, ClassificationFactory):
        return get_metric(name, **_label_settings(factory, settings, outcomes))
    return get_metric(name, **settings)


@dataclass(frozen=True)
class CorpusScores:
    metrics: tuple[Metric, ...]
    statistics: tuple[np.ndarray, ...]  # per metric, (documents, statistics)
    scores: tuple[Score, ...]  # one per metric, then per-class rows such as `f1[label]`
    per_class: pd.DataFrame | None  # label, precision, recall, f1, support


def _outcomes(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]] | None,
    labels: Sequence[str] | None,
) -> list[SampleOutcome]:
    count = len(predictions)
    for what, values in (("references", references), ("labels", labels)):
        if values is not None and len(values) != count:
            raise HarnessError(f"{count} predictions but {len(values)} {what}")
    outcomes = []
    for index, prediction in enumerate(predictions):
        refs: tuple[str, ...] = ()
        if references is not None:
            item = references[index]
            refs = (item,) if isinstance(item, str) else tuple(item)
        target = labels[index] if labels is not None else (refs[0] if refs else "")
        outcomes.append(
            SampleOutcome("generate_until", target=target, references=refs, prediction=prediction)
        )
    return outcomes


def score_texts(
    metrics: Sequence[MetricSpec],
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]] | None = None,
    labels: Sequence[str] | None = None,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
) -> CorpusScores:
    """Corpus scores (value, stderr, interval) of generated texts.

    `references[i]` is one reference or a list of them; `labels[i]` is the gold label that
    classification metrics (acc, precision/recall/f1 and their _macro/_micro/_weighted forms) compare
    the prediction with; without labels they use the single reference. `settings` maps a metric
    name to its metric_list settings; a classification metric without `labels` gets the sorted
    union of gold and predicted labels, as scikit-learn does.
    """
    if not predictions:
        raise HarnessError("no predictions to score")
    if references is None and not all(uses_labels(metric) for metric in metrics):
        raise HarnessError("text metrics need references")
    outcomes = _outcomes(predictions, references, labels)
    if labels is None and any(uses_labels(metric) for metric in metrics):
        for index, outcome in enumerate(outcomes):
            if len(outcome.references) != 1:
                raise HarnessError(
                    f"document {index + 1} has {len(outcome.references)} references; "
                    "classification metrics need one gold label per document"
                )
    built: list[Metric] = []
    for item in metrics:
        metric = (
            build_metric(item, (settings or {}).get(item, {}), outcomes) if isinstance(item, str) else item
        )
        if "generate_until" not in metric.output_types:
            needs = ", ".join(sorted(metric.output_types))
            raise HarnessError(
                f"metric '{metric.name}' does not fit generated text: it scores {needs} outputs"
            )
        built.append(metric)
    matrices = [statistics_matrix(metric, outcomes) for metric in built]
    scores = score_many(built, matrices, bootstrap_resamples=bootstrap_resamples, seed=seed)
    table = None
    classifiers = [m for m in built if isinstance(m, Classification) and m.labels and m.class_label is None]
    if classifiers:
        # Per-class rows `f1[label]` for the first metric of each measure, read off its statistics.
        first_of_measure: dict[str, Classification] = {}
        for metric in classifiers:
            first_of_measure.setdefault(metric.measure, metric)
        for parent in first_of_measure.values():
            views = class_metrics(parent)
            stats = [matrices[built.index(parent)]] * len(views)
            rows = score_many(
                [view for _, view in views], stats, bootstrap_resamples=bootstrap_resamples, seed=seed
            )
            scores += [
                replace(row, metric=f"{parent.measure}[{label}]")
                for (label, _), row in zip(views, rows, strict=True)
            ]
        table = per_class_table(classifiers[0], matrices[built.index(classifiers[0])].sum(axis=0))
    return CorpusScores(tuple(built), tuple(matrices), tuple(scores), table)
