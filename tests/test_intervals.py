"""Intervals of proportions (accuracy, exact match, token F1) stay inside [0, 1], at 0/n, n/n and n = 1 too.

Reference: scipy's Wilson score interval (`binomtest(k, n).proportion_ci(method="wilson")`); the stderr
stays lm-eval's `mean_stderr`, so parity with lm-eval holds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import binomtest, norm

from harness.metrics import get_metric, score
from harness.metrics.uncertainty import wilson_interval

COUNTS = [(0, 1), (1, 1), (0, 2), (2, 2), (0, 5), (5, 5), (1, 5), (0, 100), (100, 100), (3, 10), (37, 80)]


def _binary(successes: int, n: int) -> np.ndarray:
    values = np.zeros(n)
    values[:successes] = 1.0
    return np.column_stack([values, np.ones(n)])


@pytest.mark.parametrize("metric_name", ["acc", "exact_match", "acc_norm"])
@pytest.mark.parametrize(("successes", "n"), COUNTS)
def test_zero_one_means_get_scipys_wilson_interval(metric_name: str, successes: int, n: int) -> None:
    result = score(get_metric(metric_name), _binary(successes, n))
    reference = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low == pytest.approx(reference.low, abs=1e-12)
    assert result.ci_high == pytest.approx(reference.high, abs=1e-12)
    assert 0.0 <= result.ci_low <= result.value <= result.ci_high <= 1.0
    if successes in (0, n):  # the Wald interval collapses to a point here; Wilson's does not
        assert result.ci_high - result.ci_low > 0


@pytest.mark.parametrize(("successes", "n"), COUNTS)
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_interval_equals_scipy(successes: int, n: int, confidence: float) -> None:
    reference = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_interval(successes, n, confidence)
    assert (low, high) == pytest.approx((reference.low, reference.high), abs=1e-12)


@pytest.mark.parametrize(("successes", "n"), [(s, n) for s, n in COUNTS if n > 1])
def test_stderr_stays_lm_evals(successes: int, n: int) -> None:
    metrics = pytest.importorskip("lm_eval.api.metrics")
    values = _binary(successes, n)[:, 0]
    result = score(get_metric("acc"), _binary(successes, n))
    assert result.stderr == pytest.approx(metrics.mean_stderr(values.tolist()), rel=1e-12, abs=1e-15)


def test_single_document_keeps_no_stderr() -> None:
    result = score(get_metric("acc"), _binary(0, 1))
    assert result.stderr is None  # lm-eval has none for one document either
    assert result.ci_low == 0.0 and result.ci_high is not None and 0.0 < result.ci_high < 1.0


GRADED = {
    "all zero": np.zeros(7),
    "all one": np.ones(7),
    "near zero": np.array([0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.2, 0.0]),
    "near one": np.array([1.0, 1.0, 0.9, 1.0, 1.0, 0.95, 1.0, 1.0, 1.0]),
    "u-shaped": np.random.default_rng(0).beta(0.5, 0.5, 60),
    "two documents": np.array([0.25, 1.0]),
}


@pytest.mark.parametrize("name", list(GRADED))
def test_graded_values_in_unit_interval_stay_inside(name: str) -> None:
    values = GRADED[name]
    result = score(get_metric("token_f1"), np.column_stack([values, np.ones(values.size)]))
    assert result.ci_low is not None and result.ci_high is not None
    assert 0.0 <= result.ci_low <= result.value <= result.ci_high <= 1.0
    mean, n = float(values.mean()), values.size
    if 0.0 < mean < 1.0:
        # Wilson's interval at the effective sample size p(1-p)/stderr**2: its ends solve
        # (mean - p)**2 = z**2 * p * (1 - p) / n_eff, found here by root finding, not by formula.
        stderr = float(np.std(values, ddof=1) / math.sqrt(n))
        assert result.stderr == pytest.approx(stderr, rel=1e-12)
        n_eff = mean * (1 - mean) / stderr**2
        z = norm.ppf(0.975)

        def gap(p: float) -> float:
            return (mean - p) ** 2 - z**2 * p * (1 - p) / n_eff

        assert result.ci_low == pytest.approx(brentq(gap, 0.0, mean), abs=1e-9)
        assert result.ci_high == pytest.approx(brentq(gap, mean, 1.0), abs=1e-9)


def test_means_outside_unit_interval_keep_the_normal_interval() -> None:
    values = np.array([-2.0, 0.5, 3.0, 1.5])
    result = score(get_metric("acc"), np.column_stack([values, np.ones(4)]))
    stderr = float(np.std(values, ddof=1) / 2)
    half = norm.ppf(0.975) * stderr
    assert (result.ci_low, result.ci_high) == pytest.approx((values.mean() - half, values.mean() + half))


def test_group_rows_of_a_fairness_frame_stay_inside() -> None:
    # A group that got every answer wrong is where the old normal interval went below 0.
    from harness.fairness.groups import group_design, group_metric_frame

    correct = np.array([0.0] * 12 + [1.0] * 6 + [0.0] * 6)
    groups = ["de"] * 12 + ["en"] * 12
    design = group_design(groups)
    frame = group_metric_frame(
        get_metric("acc"), np.column_stack([correct, np.ones(correct.size)]), design, bootstrap_resamples=50
    )
    for estimate in frame.by_group.values():
        assert estimate.ci_low is not None and estimate.ci_high is not None
        assert 0.0 <= estimate.ci_low <= estimate.value <= estimate.ci_high <= 1.0
    high = frame.by_group["de"].ci_high
    assert frame.by_group["de"].ci_low == 0.0 and high is not None and high > 0.0
