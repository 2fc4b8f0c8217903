"""Krippendorff's alpha and Cohen's kappa against the reference packages (`krippendorff`, scikit-learn)."""

from __future__ import annotations

import math
from typing import Literal

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from harness.ratings.agreement import (
    Level,
    alpha_from_long,
    cohen_kappa,
    coincidence_matrix,
    krippendorff_alpha,
    pairwise_kappas,
)

NAN = math.nan
# The reliability data of Krippendorff (2011), "Computing Krippendorff's alpha-reliability", as the
# `krippendorff` package's own tests use it: 3 coders (rows) × 15 units, NaN = not coded.
PAPER_DATA = [
    [NAN, NAN, NAN, NAN, NAN, 3, 4, 1, 2, 1, 1, 3, 3, NAN, 3],
    [1, NAN, 2, 1, 3, 3, 4, 3, NAN, NAN, NAN, NAN, NAN, NAN, NAN],
    [NAN, NAN, 2, 1, 3, 4, 4, NAN, 2, 1, 1, 3, 3, NAN, 4],
]
# The package's string-label fixture, coded pos=0, neg=1, neu=2 (nominal alpha ignores the codes).
LABEL_DATA = [[0, 1, 2, NAN], [0, 1, 2, 0], [0, 1, 0, 0]]


@pytest.mark.parametrize(
    ("data", "level", "published"),
    [
        (PAPER_DATA, "nominal", 0.691358),
        (PAPER_DATA, "interval", 0.810845),
        (LABEL_DATA, "nominal", 0.722222),
    ],
)
def test_alpha_matches_published_fixtures(data: list[list[float]], level: Level, published: float) -> None:
    ours = krippendorff_alpha(data, level)
    assert round(ours, 6) == published
    assert ours == pytest.approx(krippendorff.alpha(data, level_of_measurement=level), abs=1e-12)


def test_coincidence_matrix_of_the_paper_example() -> None:
    values, matrix = coincidence_matrix(PAPER_DATA)
    assert values.tolist() == [1, 2, 3, 4]
    # Counted by hand from the table: 26 pairable values (units 1, 2 and 14 have fewer than two),
    # seven 1s, four 2s, ten 3s and five 4s; the 1-1 coincidences come from units 4, 10 and 11, the
    # 3-4 ones from unit 6 (3, 3, 4: 2 pairs / (3 - 1)) and unit 15.
    assert matrix.sum(axis=1).tolist() == pytest.approx([7, 4, 10, 5])
    assert np.allclose(matrix, matrix.T)
    assert (matrix[0, 0], matrix[0, 2], matrix[2, 3]) == pytest.approx((6.0, 1.0, 2.0))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("level", ["nominal", "interval"])
def test_alpha_matches_the_package_on_random_data(seed: int, level: Level) -> None:
    rng = np.random.default_rng(seed)
    raters, units = int(rng.integers(2, 7)), int(rng.integers(5, 60))
    truth = rng.integers(1, 6, size=units)
    noise = rng.integers(-1, 2, size=(raters, units)) * (rng.random((raters, units)) < 0.4)
    data = np.clip(truth + noise, 1, 5).astype(float)
    data[rng.random(data.shape) < 0.3] = NAN
    expected = krippendorff.alpha(data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-12)


def test_alpha_degenerate_cases() -> None:
    assert math.isnan(
        krippendorff_alpha([[3, 3, 3], [3, 3, 3]], "nominal")
    )  # one value: nothing to tell apart
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]], "interval") == 1.0
    empty = alpha_from_long(
        pd.DataFrame({"unit": [1, 2], "rater": ["a", "b"], "value": [1.0, 2.0]}), "interval"
    )
    assert math.isnan(empty.alpha) and empty.units == 0 and empty.ci_low is None


def test_alpha_from_long_has_a_bootstrap_interval() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for unit in range(40):
        truth = rng.integers(1, 6)
        for rater in ("a", "b", "c"):
            rows.append(
                {"unit": unit, "rater": rater, "value": float(np.clip(truth + rng.integers(-1, 2), 1, 5))}
            )
    long = pd.DataFrame(rows)
    result = alpha_from_long(long, "interval", resamples=500, seed=1)
    matrix = long.pivot(index="rater", columns="unit", values="value").to_numpy()
    assert result.alpha == pytest.approx(krippendorff.alpha(matrix, level_of_measurement="interval"))
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low < result.alpha < result.ci_high
    assert (result.units, result.pairable) == (40, 120)
    again = alpha_from_long(long, "interval", resamples=500, seed=1)
    assert (again.ci_low, again.ci_high) == (result.ci_low, result.ci_high)  # seeded


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(4))
def test_cohen_kappa_matches_sklearn(weights: Literal["linear", "quadratic"] | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    first = rng.integers(1, 6, size=60)
    second = np.clip(first + rng.integers(-2, 3, size=60) * (rng.random(60) < 0.5), 1, 5)
    labels = [1, 2, 3, 4, 5]
    expected = cohen_kappa_score(first, second, labels=labels, weights=weights)
    assert cohen_kappa(list(first), list(second), labels=labels, weights=weights) == pytest.approx(expected)


def test_cohen_kappa_on_labels_and_degenerate_input() -> None:
    first = ["a", "b", "tie", "a", "both_bad", "b", "a"]
    second = ["a", "b", "a", "a", "both_bad", "tie", "b"]
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second))
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))
    with pytest.raises(ValueError, match="every unit"):
        cohen_kappa(["a"], ["a", "b"])


def test_pairwise_kappas_uses_shared_units_only() -> None:
    long = pd.DataFrame(
        {
            "unit": [1, 2, 3, 1, 2, 3, 3, 4],
            "rater": ["ann", "ann", "ann", "bob", "bob", "bob", "cy", "cy"],
            "value": [1, 2, 3, 1, 2, 2, 3, 1],
        }
    )
    table = pairwise_kappas(long, labels=[1, 2, 3])
    assert table[["rater_a", "rater_b", "shared"]].values.tolist() == [["ann", "bob", 3]]  # cy shares 1 unit
    assert table["kappa"].iloc[0] == pytest.approx(cohen_kappa_score([1, 2, 3], [1, 2, 2], labels=[1, 2, 3]))
