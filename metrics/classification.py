"""Classification precision, recall and F1 (binary, macro, micro, weighted) and a per-class table.

Each document contributes one-hot confusion counts over a declared label set: for every label, is
it the gold label, is it the predicted label, and both (tp). Summed over documents these are
exactly scikit-learn's per-label tp/pred/true sums, so every average is a vectorised function of
them and equals `sklearn.metrics.precision_recall_fscore_support` with `labels=` that label set
(tested against it). A prediction outside the label set counts only as a miss of the gold label,
as in scikit-learn.

Labels: for multiple_choice the gold and predicted labels are choice indices (an integer label) or
choice texts (a string label); the default, binary with pos_label 1, is lm-eval's `f1` on a
two-choice task. For generate_until they are the target and the generated text, compared as text
without surrounding whitespace (`labels: [0, 1]` matches the generated texts "0" and " 1\n").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError
from harness.metrics.base import METRICS, SampleOutcome, check_output_type, make_signature, require

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AVERAGES",
    "Classification",
    "ClassificationFactory",
    "class_metrics",
    "label_text",
    "per_class_table",
]

AVERAGES = ("binary", "macro", "micro", "weighted")
MEASURES = ("precision", "recall", "f1")
Label = str | int


def _labels_of(outcome: SampleOutcome, metric: Classification) -> tuple[Any, Any, tuple[str, ...]]:
    """(gold, predicted, choice texts) of one document."""
    if outcome.output_type == "multiple_choice":
        logprobs = np.asarray(outcome.choice_logprobs, dtype=np.float64)
        if logprobs.size == 0:
            raise ValueError(f"metric '{metric.name}' needs SampleOutcome.choice_logprobs")
        gold = require(outcome.gold, "gold", metric)
        return gold, int(np.argmax(logprobs)), outcome.choices
    return outcome.target, require(outcome.prediction, "prediction", metric), ()


def _is(label: Label, value: Any, choices: tuple[str, ...]) -> bool:
    if choices:  # multiple_choice: value is an index; a string label names a choice's text
        if isinstance(label, str):
            return 0 <= value < len(choices) and choices[value] == label
        return bool(value == label)
    return label_text(value) == label_text(label)


def label_text(value: object) -> str:
    """A label as text. Surrounding whitespace is dropped: a generated " yes" is the label "yes"."""
    return str(value).strip()


def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_division: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            denominator == 0, zero_division, numerator / np.where(denominator == 0, 1, denominator)
        )


@dataclass(frozen=True)
class Classification:
    measure: str  # precision | recall | f1
    average: str = "binary"
    labels: tuple[Label, ...] | None = None
    pos_label: Label = 1
    zero_division: float = 0.0
    class_label: Label | None = None  # set: the value is this class's score (a per-class row)
    name: str = ""

    higher_is_better = True
    output_types = frozenset({"multiple_choice", "generate_until"})
    is_mean = False

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.measure)
        if self.average not in AVERAGES:
            raise HarnessError(
                f"{self.name}: average must be one of {', '.join(AVERAGES)}, got {self.average!r}"
            )
        for label in (*(self.labels or ()), self.pos_label):
            if isinstance(label, bool) or not isinstance(label, str | int):
                # YAML reads yes/no/true/false as booleans; quoting keeps them labels.
                raise HarnessError(f"{self.name}: labels must be strings or integers (quote {label!r})")
        if self.labels is not None:
            if not self.labels or len(set(map(str, self.labels))) != len(self.labels):
                raise HarnessError(f"{self.name}: labels must be a non-empty list of distinct labels")
            if self.average == "binary" and str(self.pos_label) not in map(str, self.labels):
                raise HarnessError(
                    f"{self.name}: pos_label {self.pos_label!r} is not one of the labels "
                    f"{list(self.labels)}; set pos_label, or choose average: macro, micro or weighted"
                )
        elif self.average != "binary":
            raise HarnessError(
                f"{self.name}: average '{self.average}' needs the label set; add labels: [...] to the metric"
            )
        if self.class_label is not None and str(self.class_label) not in map(str, self.labels or ()):
            raise HarnessError(f"{self.name}: class_label {self.class_label!r} is not one of the labels")
        if not (self.zero_division in (0.0, 1.0) or math.isnan(self.zero_division)):
            raise HarnessError(f"{self.name}: zero_division must be 0, 1 or nan, got {self.zero_division!r}")

    @property
    def label_set(self) -> tuple[Label, ...]:
        return self.labels if self.labels is not None else (self.pos_label,)

    @property
    def statistic_names(self) -> tuple[str, ...]:
        return tuple(f"{kind}:{label}" for label in self.label_set for kind in ("tp", "pred", "true"))

    def sample_statistics(self, outcome: SampleOutcome) -> tuple[float, ...]:
        check_output_type(self, outcome)
        gold, predicted, choices = _labels_of(outcome, self)
        row: list[float] = []
        for label in self.label_set:
            is_gold, is_predicted = _is(label, gold, choices), _is(label, predicted, choices)
            row += [float(is_gold and is_predicted), float(is_predicted), float(is_gold)]
        return tuple(row)

    def per_label(self, totals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-label precision, recall, F1 and support (true count): each of shape (..., labels)."""
        counts = np.asarray(totals, dtype=np.float64)
        counts = counts.reshape(*counts.shape[:-1], len(self.label_set), 3)
        tp, predicted, true = counts[..., 0], counts[..., 1], counts[..., 2]
        return (*self._scores(tp, predicted, true), true)

    def _scores(
        self, tp: np.ndarray, predicted: np.ndarray, true: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        precision = _divide(tp, predicted, self.zero_division)
        recall = _divide(tp, true, self.zero_division)
        f1 = _divide(2.0 * tp, true + predicted, self.zero_division)  # scikit-learn's F-beta with beta=1
        return precision, recall, f1

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        counts = np.asarray(totals, dtype=np.float64)
        counts = counts.reshape(*counts.shape[:-1], len(self.label_set), 3)
        tp, predicted, true = counts[..., 0], counts[..., 1], counts[..., 2]
        index = MEASURES.index(self.measure)
        single = self.class_label if self.class_label is not None else self.pos_label
        if self.average == "micro" and self.class_label is None:
            summed = (tp.sum(axis=-1), predicted.sum(axis=-1), true.sum(axis=-1))
            return np.asarray(self._scores(*summed)[index], dtype=np.float64)
        values = self._scores(tp, predicted, true)[index]
        if self.average == "binary" or self.class_label is not None:
            # Labels match as text, so pos_label 1 and a label "1" (YAML typing) are the same class.
            position = [str(label) for label in self.label_set].index(str(single))
            return np.asarray(values[..., position], dtype=np.float64)
        valid = ~np.isnan(values)  # only zero_division=nan makes NaNs; scikit-learn skips them
        kept = np.where(valid, values, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            plain = kept.sum(axis=-1) / valid.sum(axis=-1)
            if self.average == "macro":
                return np.asarray(plain, dtype=np.float64)
            weights = np.where(valid, true, 0.0)
            total_weight = weights.sum(axis=-1)
            weighted = (kept * weights).sum(axis=-1) / total_weight
        # All supports zero: scikit-learn falls back to the unweighted mean.
        return np.asarray(np.where(total_weight > 0, weighted, plain), dtype=np.float64)

    def signature(self) -> str:
        settings: dict[str, object] = {
            "average": self.average,
            "labels": None if self.labels is None else list(self.labels),
            "zero_division": "nan" if math.isnan(self.zero_division) else self.zero_division,
        }
        if self.average == "binary":
            settings["pos_label"] = self.pos_label
        if self.class_label is not None:
            settings["class_label"] = self.class_label
        return make_signature(self.name, settings)


def class_metrics(metric: Classification) -> list[tuple[Label, Classification]]:
    """`metric` restricted to each of its labels: the rows of a per-class table.

    Each keeps the name and statistics of `metric` (so its signature rebuilds a metric that reads
    the stored statistics of `metric`) and reports one class's score; score rows name them
    `measure[label]`.
    """
    return [(label, replace(metric, class_label=label)) for label in metric.labels or ()]


def per_class_table(metric: Classification, totals: np.ndarray) -> pd.DataFrame:
    """scikit-learn's classification report from summed statistics: label, precision, recall, f1, support."""
    import pandas as pd

    precision, recall, f1, support = metric.per_label(np.asarray(totals, dtype=np.float64))
    return pd.DataFrame(
        {
            "label": [str(label) for label in metric.label_set],
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(np.int64),
        }
    )


def _zero_division(value: object) -> float:
    if value == "warn":  # scikit-learn's default: 0 with a warning
        return 0.0
    if value == "nan":
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HarnessError(f"zero_division must be 0, 1 or nan, got {value!r}")
    return float(value)


class ClassificationFactory:
    """What the registered classification names build; `average` None means it is a setting."""

    def __init__(self, measure: str, average: str | None) -> None:
        self.measure = measure
        self.average = average


class _AnyAverage(ClassificationFactory):
    """Factory of `precision`, `recall` and `f1`: scikit-learn's parameters, average default binary."""

    def __init__(self, measure: str) -> None:
        super().__init__(measure, None)

    def __call__(
        self,
        *,
        average: str = "binary",
        labels: Sequence[Label] | None = None,
        pos_label: Label = 1,
        zero_division: float | str = 0.0,
        class_label: Label | None = None,
    ) -> Classification:
        return Classification(
            self.measure,
            average=average,
            labels=_label_tuple(self.measure, labels),
            pos_label=pos_label,
            zero_division=_zero_division(zero_division),
            class_label=class_label,
            name=self.measure,
        )


class _FixedAverage(ClassificationFactory):
    """Factory of scikit-learn's scorer names such as `f1_macro`: the average is in the name."""

    average: str

    def __init__(self, measure: str, average: str) -> None:
        super().__init__(measure, average)

    def __call__(
        self,
        *,
        labels: Sequence[Label] | None = None,
        zero_division: float | str = 0.0,
        class_label: Label | None = None,
    ) -> Classification:
        name = f"{self.measure}_{self.average}"
        return Classification(
            self.measure,
            average=self.average,
            labels=_label_tuple(name, labels),
            zero_division=_zero_division(zero_division),
            class_label=class_label,
            name=name,
        )


def _label_tuple(name: str, labels: object) -> tuple[Label, ...] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise HarnessError(f"{name}: labels must be a list")
    return tuple(labels)


METRICS.register("precision", _AnyAverage("precision"))
METRICS.register("recall", _AnyAverage("recall"))
METRICS.register("f1", _AnyAverage("f1"))
METRICS.register("precision_macro", _FixedAverage("precision", "macro"))
METRICS.register("precision_micro", _FixedAverage("precision", "micro"))
METRICS.register("precision_weighted", _FixedAverage("precision", "weighted"))
METRICS.register("recall_macro", _FixedAverage("recall", "macro"))
METRICS.register("recall_micro", _FixedAverage("recall", "micro"))
METRICS.register("recall_weighted", _FixedAverage("recall", "weighted"))
METRICS.register("f1_macro", _FixedAverage("f1", "macro"))
METRICS.register("f1_micro", _FixedAverage("f1", "micro"))
METRICS.register("f1_weighted", _FixedAverage("f1", "weighted"))
