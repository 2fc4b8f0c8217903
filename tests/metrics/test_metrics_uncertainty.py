"""Stderr, bootstrap and confidence intervals, plus registry errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.errors import HarnessError, UnknownNameError
from harness.metrics import SampleOutcome, bootstrap_replicates, get_metric, score


def _perplexity_stats(logprobs: np.ndarray) -> np.ndarray:
    return np.column_stack([logprobs, np.ones_like(logprobs)])


def test_bootstrap_is_seeded_and_reproducible() -> None:
    stats = _perplexity_stats(-np.random.default_rng(0).gamma(2.0, 1.0, size=300))
    metric = get_metric("perplexity")
    first = bootstrap_replicates(metric, stats, 500, seed=7)
    assert np.array_equal(first, bootstrap_replicates(metric, stats, 500, seed=7))
    assert not np.array_equal(first, bootstrap_replicates(metric, stats, 500, seed=8))
    assert score(metric, stats, seed=7) == score(metric, stats, seed=7)


def test_replicates_are_paired_across_systems() -> None:
    # The draws depend on (seed, n) only: doubling every logprob squares every replicate.
    logprobs = -np.random.default_rng(1).uniform(0.1, 3.0, size=200)
    metric = get_metric("perplexity")
    a = bootstrap_replicates(metric, _perplexity_stats(logprobs), 300, seed=3)
    b = bootstrap_replicates(metric, _perplexity_stats(2 * logprobs), 300, seed=3)
    np.testing.assert_allclose(b, a**2, rtol=1e-12)


def test_bootstrap_of_a_mean_matches_closed_form() -> None:
    values = np.random.default_rng(2).binomial(1, 0.3, size=400).astype(float)
    stats = np.column_stack([values, np.ones_like(values)])
    metric = get_metric("acc")
    replicates = bootstrap_replicates(metric, stats, 4000, seed=0)
    closed = score(metric, stats).stderr
    assert closed is not None
    assert replicates.std(ddof=1) == pytest.approx(closed, rel=0.05)
    assert replicates.mean() == pytest.approx(values.mean(), abs=closed / 5)


def test_bootstrap_chunks_large_corpora(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.metrics.uncertainty as uncertainty

    monkeypatch.setattr(uncertainty, "_MAX_CELLS", 1000)  # forces 10-row chunks for n=100
    stats = _perplexity_stats(-np.random.default_rng(4).uniform(0.1, 3.0, size=100))
    metric = get_metric("perplexity")
    replicates = bootstrap_replicates(metric, stats, 95, seed=0)
    # Each slot holds the metric of its own resample, drawn chunk by chunk (9 x 10 rows, then 5) from one
    # generator: none is left unfilled or filled twice.
    rng = np.random.default_rng(0)
    resamples = [rows for size in [10] * 9 + [5] for rows in rng.integers(0, 100, size=(size, 100))]
    expected = [float(metric.aggregate(stats[rows].sum(axis=0))) for rows in resamples]
    assert replicates.shape == (95,)
    np.testing.assert_allclose(replicates, expected, rtol=1e-12)
    assert len(np.unique(replicates)) > 90


def test_mean_ci_coverage() -> None:
    # 400 seeded trials of n=100 normal draws: a 95% interval should cover the true mean in 93-97%.
    rng = np.random.default_rng(12345)
    metric = get_metric("acc")  # any is_mean metric: the interval only sees the statistics
    true_mean, covered = 0.3, 0
    for _ in range(400):
        values = rng.normal(true_mean, 1.0, size=100)
        result = score(metric, np.column_stack([values, np.ones(100)]))
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= true_mean <= result.ci_high
    assert 0.93 <= covered / 400 <= 0.97


def test_bootstrap_ci_coverage_for_perplexity() -> None:
    # Percentile intervals are a little liberal for n=100, so the band is wider than for the mean.
    rng = np.random.default_rng(2024)
    metric = get_metric("perplexity")
    true_value = float(np.exp(2.0))  # logprob ~ -Gamma(2, 1): mean -2
    covered = 0
    for trial in range(200):
        stats = _perplexity_stats(-rng.gamma(2.0, 1.0, size=100))
        result = score(metric, stats, bootstrap_resamples=500, seed=trial)
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= true_value <= result.ci_high
    assert 0.89 <= covered / 200 <= 0.98


def test_score_fields() -> None:
    metric = get_metric("perplexity")
    stats = _perplexity_stats(np.array([-1.0, -2.0, -3.0]))
    result = score(metric, stats, bootstrap_resamples=200)
    assert result.value == pytest.approx(np.exp(2.0))
    assert result.n == 3 and result.higher_is_better is False
    assert result.signature.startswith("perplexity|harness:")
    assert result.stderr is not None and result.ci_low is not None and result.ci_high is not None
    assert result.ci_low <= result.value <= result.ci_high


def test_single_sample_has_no_uncertainty() -> None:
    for name, stats in [("token_f1", np.array([[0.5, 1.0]])), ("perplexity", np.array([[-1.0, 1.0]]))]:
        result = score(get_metric(name), stats)
        assert result.stderr is None and result.ci_low is None and result.ci_high is None
    # One right or wrong answer still bounds a proportion (Wilson); lm-eval has no stderr for it.
    result = score(get_metric("acc"), np.array([[1.0, 1.0]]))
    assert result.stderr is None and result.ci_low is not None and result.ci_high == 1.0
    assert 0.0 < result.ci_low < 1.0


def test_zero_resamples_turns_off_bootstrap_only() -> None:
    stats = _perplexity_stats(np.array([-1.0, -2.0]))
    assert score(get_metric("perplexity"), stats, bootstrap_resamples=0).stderr is None
    assert score(get_metric("acc"), np.array([[1.0, 1.0], [0.0, 1.0]]), bootstrap_resamples=0).stderr == 0.5


@pytest.mark.parametrize(
    ("kwargs", "stats"),
    [
        ({}, np.zeros((0, 2))),
        ({"confidence": 1.0}, np.ones((2, 2))),
        ({"bootstrap_resamples": -1}, np.ones((2, 2))),
    ],
)
def test_score_rejects_bad_input(kwargs: dict[str, Any], stats: np.ndarray) -> None:
    with pytest.raises(HarnessError):
        score(get_metric("perplexity"), stats, **kwargs)


def test_score_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        score(get_metric("acc"), np.ones((3, 3)))


def test_unknown_metric_suggests_closest_name() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'acc_norm'"):
        get_metric("acc_nrom")
    with pytest.raises(UnknownNameError, match="did you mean 'word_perplexity'"):
        get_metric("word_perplexty")


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(HarnessError, match="ignore_cas"):
        get_metric("exact_match", ignore_cas=True)
    with pytest.raises(HarnessError, match="does not accept"):
        get_metric("acc", ignore_case=True)
    with pytest.raises(HarnessError, match="true or false"):
        get_metric("exact_match", ignore_case="yes")
    with pytest.raises(HarnessError, match="list"):
        get_metric("exact_match", regexes_to_ignore="[0-9]")
    with pytest.raises(HarnessError, match="bad regex"):
        get_metric("exact_match", regexes_to_ignore=["("])


def test_wrong_output_type_is_a_user_error() -> None:
    with pytest.raises(HarnessError, match="does not apply to output_type 'generate_until'"):
        get_metric("bits_per_byte").sample_statistics(SampleOutcome("generate_until", prediction="x"))
