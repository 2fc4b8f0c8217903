"""Several group fields: each alone and every intersection equal fairlearn's MetricFrame with several
sensitive features; intersections too small to report are listed, never merged."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_difference
from sklearn.metrics import accuracy_score, f1_score, recall_score

from harness.fairness import Decisions, field_designs, group_metric_frame, group_scores
from harness.fairness.scores import signature_settings
from harness.metrics import Score, get_metric, statistics_matrix
from tests.fairness.test_fairness_golden import choice_outcomes

TOLERANCE = 1e-12


def _data(seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """y_true, y_pred and three group fields with unequal sizes and a bias in one intersection."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["woman", "man"], size=n, p=[0.45, 0.55])
    age = rng.choice(["young", "middle", "old"], size=n, p=[0.4, 0.35, 0.25])
    language = rng.choice(["en", "de"], size=n, p=[0.7, 0.3])
    y_true = rng.random(n) < 0.5
    hidden = (gender == "woman") & (age == "old")  # the gap hides in an intersection
    p_correct = np.where(hidden, 0.55, 0.8)
    correct = rng.random(n) < p_correct
    y_pred = np.where(correct, y_true, ~y_true)
    return y_true.astype(int), y_pred.astype(int), {"gender": gender, "age": age, "language": language}


@pytest.mark.parametrize(
    ("seed", "metric_name", "reference", "fields"),
    [
        (0, "acc", accuracy_score, ("gender", "age")),
        (1, "acc", accuracy_score, ("gender", "age", "language")),
        (2, "f1", f1_score, ("gender", "language")),
        (3, "recall", recall_score, ("age", "language")),
    ],
)
def test_every_design_equals_fairlearn_metric_frame(
    seed: int, metric_name: str, reference: Callable[..., float], fields: tuple[str, ...]
) -> None:
    y_true, y_pred, columns = _data(seed)
    metric = get_metric(metric_name)
    stats = statistics_matrix(metric, choice_outcomes(y_true, y_pred))
    designs = field_designs({name: list(columns[name]) for name in fields}, min_group_size=1)
    assert [fd.fields for fd in designs][: len(fields)] == [(name,) for name in fields]
    assert len(designs) == 2 ** len(fields) - 1  # every non-empty combination of fields
    for fd in designs:
        frame = group_metric_frame(metric, stats, fd.design, bootstrap_resamples=0)
        sensitive = pd.DataFrame({name: columns[name] for name in fd.fields})
        expected = MetricFrame(metrics=reference, y_true=y_true, y_pred=y_pred, sensitive_features=sensitive)
        by_group = expected.by_group
        assert len(frame.by_group) == len(by_group)
        for key, value in by_group.items():
            values = key if isinstance(key, tuple) else (key,)
            label = "&".join(f"{name}={v}" for name, v in zip(fd.fields, values, strict=True))
            assert abs(frame.by_group[label].value - float(value)) <= TOLERANCE
        assert abs(frame.difference.value - float(expected.difference())) <= TOLERANCE
        assert abs(frame.ratio.value - float(expected.ratio())) <= TOLERANCE
        assert abs(frame.worst_group.value - float(expected.group_min())) <= TOLERANCE


def test_parity_over_an_intersection_equals_fairlearn() -> None:
    y_true, y_pred, columns = _data(4)
    rows = group_scores(
        [],
        [],
        {"gender": list(columns["gender"]), "age": list(columns["age"])},
        decisions=Decisions(y_true.astype(bool), y_pred.astype(bool), "1"),
        bootstrap_resamples=0,
        permutations=0,
    )
    by_name = {row.metric: row for row in rows}
    sensitive = pd.DataFrame({"gender": columns["gender"], "age": columns["age"]})
    expected = demographic_parity_difference(y_true, y_pred, sensitive_features=sensitive)
    found = by_name["fairness/demographic_parity_difference/gender&age"].value
    assert abs(found - expected) <= TOLERANCE
    alone = demographic_parity_difference(y_true, y_pred, sensitive_features=columns["gender"])
    assert abs(by_name["fairness/demographic_parity_difference/gender"].value - alone) <= TOLERANCE


def _by_name(scores: list[Score]) -> dict[str, Score]:
    return {item.metric: item for item in scores}


def test_rows_name_fields_intersections_and_the_worst_intersection() -> None:
    y_true, y_pred, columns = _data(5)
    acc = get_metric("acc")
    stats = statistics_matrix(acc, choice_outcomes(y_true, y_pred))
    groups = {"gender": list(columns["gender"]), "age": list(columns["age"])}
    scores = _by_name(group_scores([acc], [stats], groups, bootstrap_resamples=50, permutations=50))
    for name in (
        "group/acc/gender=woman",
        "group/acc/age=old",
        "group/acc/gender=woman&age=old",
        "fairness/acc/difference/gender",
        "fairness/acc/difference/age",
        "fairness/acc/difference/gender&age",
        "fairness/acc/ratio/gender&age",
        "fairness/acc/worst_group/gender&age",
        "fairness/acc/worst_intersection",
    ):
        assert name in scores, name
    worst = scores["fairness/acc/worst_intersection"]
    cells = {name: row for name, row in scores.items() if name.startswith("group/acc/") and "&" in name}
    assert worst.value == min(row.value for row in cells.values())
    settings = signature_settings(worst.signature)
    assert settings["group"] == "gender=woman&age=old"  # where the data hid the gap
    assert settings["fields"] == ["gender", "age"]
    assert worst.ci_low is not None and worst.ci_high is not None
    assert worst.ci_low <= worst.value <= worst.ci_high


def test_small_intersections_are_reported_as_too_small_never_merged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    acc = get_metric("acc")
    gender = ["woman"] * 30 + ["man"] * 34
    age = ["young"] * 27 + ["old"] * 3 + ["young"] * 17 + ["old"] * 17  # woman&old: 3 rows
    correct = np.array([1, 0, 1, 1] * 16, dtype=float)
    stats = np.column_stack([correct, np.ones(64)])
    scores = _by_name(
        group_scores([acc], [stats], {"gender": gender, "age": age}, bootstrap_resamples=0, permutations=0)
    )
    assert "group/acc/gender=woman&age=old" not in scores
    assert (
        "group/acc/gender=woman" in scores and scores["group/acc/gender=woman"].n == 30
    )  # field alone: kept
    between = scores["fairness/acc/difference/gender&age"]
    assert between.n == 61  # the three rows are left out of the intersection, not moved elsewhere
    assert signature_settings(between.signature)["too_small"] == ["gender=woman&age=old"]
    cells = {name for name in scores if name.startswith("group/acc/") and "&" in name}
    assert cells == {
        "group/acc/gender=man&age=old",
        "group/acc/gender=man&age=young",
        "group/acc/gender=woman&age=young",
    }
    assert scores["group/acc/gender=woman&age=young"].n == 27
    err = capsys.readouterr().err
    assert "too small to report" in err and "'gender=woman&age=old' (3)" in err


def test_one_field_keeps_its_plain_row_names() -> None:
    acc = get_metric("acc")
    stats = np.column_stack([np.array([1, 0] * 15, dtype=float), np.ones(30)])
    names = {row.metric for row in group_scores([acc], [stats], {"team": ["a", "b"] * 15}, permutations=0)}
    assert {"group/acc/a", "group/acc/b", "fairness/acc/difference"} <= names
