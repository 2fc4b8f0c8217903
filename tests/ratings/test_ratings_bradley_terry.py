"""Bradley–Terry against a direct maximum-likelihood fit (scipy), win rates and position bias."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import minimize

from harness.ratings.bradley_terry import (
    ELO_SCALE,
    Comparison,
    bradley_terry,
    fit_bradley_terry,
    position_bias,
    win_matrix,
    win_rates,
)

PLAYERS = ("p0", "p1", "p2", "p3", "p4")


def _votes(
    seed: int, count: int, strengths: tuple[float, ...] = (0.0, 0.5, 1.0, -0.7, 0.2)
) -> list[Comparison]:
    rng = np.random.default_rng(seed)
    votes = []
    for _ in range(count):
        i, j = rng.choice(len(strengths), size=2, replace=False)
        p = 1.0 / (1.0 + math.exp(strengths[j] - strengths[i]))
        draw = rng.random()
        score = 0.5 if draw < 0.15 else (1.0 if draw < 0.15 + 0.85 * p else 0.0)
        votes.append(Comparison(PLAYERS[i], PLAYERS[j], score))
    return votes


def _direct_mle(wins: np.ndarray) -> np.ndarray:
    """Maximise sum_ij wins_ij log sigmoid(t_i - t_j) with a general-purpose optimiser."""

    def negative_log_likelihood(free: np.ndarray) -> float:
        theta = np.concatenate([[0.0], free])
        return float((wins * np.logaddexp(0.0, -(theta[:, None] - theta[None, :]))).sum())

    result = minimize(
        negative_log_likelihood, np.zeros(wins.shape[0] - 1), method="BFGS", options={"gtol": 1e-9}
    )
    theta = np.concatenate([[0.0], result.x])
    return theta - theta.mean()


@pytest.mark.parametrize("seed", range(4))
def test_fit_matches_direct_maximum_likelihood(seed: int) -> None:
    wins = win_matrix(PLAYERS, _votes(seed, 300))
    assert fit_bradley_terry(wins) == pytest.approx(_direct_mle(wins), abs=1e-5)


def test_prior_is_the_mle_of_the_data_plus_virtual_wins() -> None:
    wins = win_matrix(PLAYERS, _votes(7, 80))
    augmented = wins + 0.5 * ((wins + wins.T) > 0)
    assert fit_bradley_terry(wins, prior=0.5) == pytest.approx(_direct_mle(augmented), abs=1e-5)


def test_two_players_have_the_closed_form() -> None:
    votes = [Comparison("a", "b", 1.0)] * 30 + [Comparison("a", "b", 0.0)] * 10
    theta = fit_bradley_terry(win_matrix(("a", "b"), votes))
    assert theta[0] - theta[1] == pytest.approx(math.log(3.0))  # 30:10 odds


def test_unbounded_and_disconnected_fits_are_refused() -> None:
    sweep = [Comparison("a", "b", 1.0), Comparison("a", "b", 1.0), Comparison("b", "c", 0.5)]
    with pytest.raises(ValueError, match="won \\(or lost\\) every comparison"):
        fit_bradley_terry(win_matrix(("a", "b", "c"), sweep))
    # The prior (half a win each way per compared pair) bounds it: the direct fit of the augmented wins.
    swept = win_matrix(("a", "b", "c"), sweep)
    augmented = swept + 0.5 * ((swept + swept.T) > 0)
    assert fit_bradley_terry(swept, prior=0.5) == pytest.approx(_direct_mle(augmented), abs=1e-5)
    apart = [Comparison("a", "b", 1.0), Comparison("c", "d", 0.0)]
    with pytest.raises(ValueError, match="never compared"):
        fit_bradley_terry(win_matrix(("a", "b", "c", "d"), apart), prior=0.5)


def test_bradley_terry_intervals_and_frame() -> None:
    votes = _votes(11, 400)
    result = bradley_terry(votes, prior=0.0, resamples=300, seed=2)
    assert result.players == PLAYERS
    assert np.array(result.theta) == pytest.approx(_direct_mle(win_matrix(PLAYERS, votes)), abs=1e-5)
    for theta, low, high in zip(result.theta, result.ci_low, result.ci_high, strict=True):
        assert low is not None and high is not None and low < theta < high
    assert sum(result.comparisons) == 2 * len(votes)
    frame = result.to_frame()
    assert frame["run_id"].iloc[0] == "p2"  # the strongest by construction
    assert frame["rating"].tolist() == pytest.approx((1000 + ELO_SCALE * frame["theta"]).tolist())
    again = bradley_terry(votes, prior=0.0, resamples=300, seed=2)
    assert again.ci_low == result.ci_low  # seeded


def test_win_rates_count_ties_half() -> None:
    votes = [
        Comparison("a", "b", 1.0),
        Comparison("a", "b", 0.5),
        Comparison("b", "a", 1.0),
        Comparison("a", "c", 0.0),
    ]
    rates = win_rates(("a", "b", "c"), votes)
    assert rates.loc["a", "b"] == pytest.approx(1.5 / 3)
    assert rates.loc["b", "a"] == pytest.approx(1.5 / 3)
    assert rates.loc["c", "a"] == 1.0
    assert math.isnan(rates.loc["b", "c"])


def test_position_bias_counts_left_wins_among_decisive_votes() -> None:
    votes = ["A"] * 30 + ["B"] * 12 + ["tie"] * 5 + ["both_bad"] * 3
    bias = position_bias(votes)
    assert (bias.left_wins, bias.decisive, bias.ties) == (30, 42, 8)
    assert bias.rate == pytest.approx(30 / 42)
    assert bias.p_value == pytest.approx(stats.binomtest(30, 42).pvalue)
    assert bias.ci_low is not None and bias.ci_low > 0.5  # this many left wins is a real bias
    assert math.isnan(position_bias(["tie"]).rate)
