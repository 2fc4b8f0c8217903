"""Pairwise preferences: Bradley–Terry ratings with bootstrap intervals, win rates and position bias.

Bradley–Terry: P(i beats j) = sigmoid(theta_i - theta_j). The maximum-likelihood thetas are found by
Newton's method on the concave log-likelihood (with theta_0 pinned, since only differences are
identified, then centred to mean 0), with a backtracking line search so every step increases the
likelihood. A tie counts as half a win each way, as Chatbot Arena counts it; "both bad" is a tie.

The MLE is finite only when every run has beaten, and lost to, someone in every split of the runs
(the "beat" graph is strongly connected). With few votes one run often wins everything, so the
fit takes `prior`: that many virtual wins each way for every pair that was compared, a mild pull
toward equal ratings that keeps every rating finite (0 fits the plain likelihood).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse.csgraph import connected_components

__all__ = [
    "ELO_SCALE",
    "BradleyTerry",
    "Comparison",
    "PositionBias",
    "bradley_terry",
    "fit_bradley_terry",
    "position_bias",
    "win_matrix",
    "win_rates",
]

# Ratings are also shown on the familiar Elo scale: 400 points = 10:1 odds, 1000 = average.
ELO_SCALE = 400.0 / math.log(10.0)


@dataclass(frozen=True)
class Comparison:
    first: str
    second: str
    score: float  # 1 first won, 0 second won, 0.5 tie


@dataclass(frozen=True)
class BradleyTerry:
    players: tuple[str, ...]
    theta: tuple[float, ...]  # log-strengths, mean 0
    ci_low: tuple[float | None, ...]
    ci_high: tuple[float | None, ...]
    comparisons: tuple[int, ...]  # comparisons each player took part in
    prior: float

    def to_frame(self) -> pd.DataFrame:
        """One row per player, best first, with theta and the Elo-scale rating and their intervals."""

        def elo(value: float | None) -> float:
            return math.nan if value is None else 1000.0 + ELO_SCALE * value

        frame = pd.DataFrame(
            {
                "run_id": self.players,
                "theta": self.theta,
                "theta_low": [math.nan if v is None else v for v in self.ci_low],
                "theta_high": [math.nan if v is None else v for v in self.ci_high],
                "rating": [elo(v) for v in self.theta],
                "rating_low": [elo(v) for v in self.ci_low],
                "rating_high": [elo(v) for v in self.ci_high],
                "comparisons": self.comparisons,
            }
        )
        return frame.sort_values("theta", ascending=False, ignore_index=True)


def win_matrix(players: Sequence[str], comparisons: Sequence[Comparison]) -> np.ndarray:
    """wins[i, j]: how often players[i] beat players[j], ties counting half."""
    index = {player: position for position, player in enumerate(players)}
    wins = np.zeros((len(players), len(players)))
    for comparison in comparisons:
        i, j = index[comparison.first], index[comparison.second]
        wins[i, j] += comparison.score
        wins[j, i] += 1.0 - comparison.score
    return wins


def _log_likelihood(theta: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """Per fit (rows of `theta`, B × k) log-likelihood of B stacked k × k win matrices."""
    diff = theta[:, :, None] - theta[:, None, :]
    # log sigmoid(d) = -log(1 + exp(-d)), written with logaddexp so large gaps do not overflow.
    return np.asarray(-(wins * np.logaddexp(0.0, -diff)).sum(axis=(1, 2)))


def _newton(wins: np.ndarray, start: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """Maximise B likelihoods at once (bootstrap replicates share every step): B × k thetas.

    theta_0 stays pinned at its start value, so each Hessian minor is invertible when the fit is
    finite; steps are halved per fit until its likelihood does not fall.
    """
    fits, k = wins.shape[0], wins.shape[1]
    games = wins + wins.transpose(0, 2, 1)
    total = wins.sum(axis=2)
    theta = np.tile(start, (fits, 1))
    current = _log_likelihood(theta, wins)
    threshold = tol * max(1.0, float(games.sum(axis=(1, 2)).max()))
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(theta[:, :, None] - theta[:, None, :])))
        gradient = total - (games * p).sum(axis=2)
        if np.max(np.abs(gradient[:, 1:])) < threshold:
            break
        curvature = games * p * (1.0 - p)
        hessian = curvature.copy()
        hessian[:, np.arange(k), np.arange(k)] -= curvature.sum(axis=2)
        step = np.zeros_like(theta)
        step[:, 1:] = np.linalg.solve(hessian[:, 1:, 1:], -gradient[:, 1:, None])[..., 0]
        scale = np.ones(fits)
        for _ in range(40):
            candidate = theta + scale[:, None] * step
            value = _log_likelihood(candidate, wins)
            accepted = value >= current - 1e-12
            if accepted.all():
                break
            scale = np.where(accepted, scale, scale / 2.0)
        theta = np.where(accepted[:, None], candidate, theta)
        current = np.where(accepted, value, current)
    return theta - theta.mean(axis=1, keepdims=True)


def _check_finite(wins: np.ndarray) -> None:
    if connected_components(wins + wins.T > 0, directed=False)[0] > 1:
        raise ValueError("some runs were never compared with the others, directly or through others")
    if connected_components(wins > 0, directed=True, connection="strong")[0] > 1:
        raise ValueError("a group of runs won (or lost) every comparison: the ratings are unbounded")


def fit_bradley_terry(
    wins: np.ndarray, *, prior: float = 0.0, tol: float = 1e-10, max_iter: int = 200
) -> np.ndarray:
    """Maximum-likelihood log-strengths (mean 0) for a k × k matrix of (weighted) wins.

    ValueError when they are not finite: the players are not all compared (directly or through
    others), or, with `prior` 0, some group of players never lost (or never won) against the rest.
    """
    wins = np.asarray(wins, dtype=np.float64)
    if wins.shape[0] < 2:
        return np.zeros(wins.shape[0])
    wins = wins + prior * (wins + wins.T > 0)
    _check_finite(wins)
    return _newton(wins[None], np.zeros(wins.shape[0]), tol, max_iter)[0]


def _replicates(
    wins: np.ndarray,
    comparisons: Sequence[Comparison],
    players: Sequence[str],
    prior: float,
    resamples: int,
    seed: int,
) -> np.ndarray:
    """Thetas of `resamples` bootstrap resamples of the votes (fits that are not finite left out)."""
    # Resampling votes = a multinomial draw of how often each distinct vote recurs.
    kinds: dict[tuple[str, str, float], int] = {}
    for c in comparisons:
        kinds[(c.first, c.second, c.score)] = kinds.get((c.first, c.second, c.score), 0) + 1
    index = {player: position for position, player in enumerate(players)}
    firsts = np.array([index[first] for first, _, _ in kinds])
    seconds = np.array([index[second] for _, second, _ in kinds])
    scores = np.array([score for _, _, score in kinds])
    shares = np.array(list(kinds.values()), dtype=np.float64) / len(comparisons)
    counts = np.random.default_rng(seed).multinomial(len(comparisons), shares, size=resamples)
    drawn = np.zeros((resamples, *wins.shape))
    rows = np.arange(resamples)[:, None]
    np.add.at(drawn, (rows, firsts[None, :], seconds[None, :]), counts * scores)
    np.add.at(drawn, (rows, seconds[None, :], firsts[None, :]), counts * (1.0 - scores))
    # The prior goes on every pair the campaign compared, so a resample that happens to miss a
    # pair stays connected and comparable with the others.
    drawn += prior * (wins + wins.T > 0)
    finite = np.ones(resamples, dtype=bool)
    # A positive prior on a connected design keeps every resample finite; without one, check each.
    for replicate in range(resamples) if prior <= 0 else ():
        try:
            _check_finite(drawn[replicate])
        except ValueError:
            finite[replicate] = False
    if not finite.any():
        return np.empty((0, len(players)))
    return _newton(drawn[finite], np.zeros(len(players)), 1e-8, 200)


def bradley_terry(
    comparisons: Sequence[Comparison],
    *,
    prior: float = 0.5,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BradleyTerry:
    """Ratings of every player in `comparisons`, with percentile intervals from resampling votes."""
    players = tuple(sorted({c.first for c in comparisons} | {c.second for c in comparisons}))
    wins = win_matrix(players, comparisons)
    theta = fit_bradley_terry(wins, prior=prior)
    games = (wins + wins.T).sum(axis=1).round().astype(int)
    low: list[float | None] = [None] * len(players)
    high: list[float | None] = [None] * len(players)
    if resamples > 0 and comparisons:
        replicates = _replicates(wins, comparisons, players, prior, resamples, seed)
        if len(replicates) >= resamples / 2:
            tail = (1.0 - confidence) / 2.0
            bounds = np.quantile(replicates, [tail, 1.0 - tail], axis=0)
            low, high = [float(v) for v in bounds[0]], [float(v) for v in bounds[1]]
    return BradleyTerry(
        players=players,
        theta=tuple(float(v) for v in theta),
        ci_low=tuple(low),
        ci_high=tuple(high),
        comparisons=tuple(int(v) for v in games),
        prior=prior,
    )


def win_rates(players: Sequence[str], comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """Row player's share of wins against the column player (ties half); NaN where never compared."""
    wins = win_matrix(players, comparisons)
    games = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(games > 0, wins / games, np.nan)
    return pd.DataFrame(rates, index=list(players), columns=list(players))


@dataclass(frozen=True)
class PositionBias:
    """How often the answer shown on the left won, among votes that picked a side."""

    left_wins: int
    decisive: int
    ties: int  # tie and both-bad votes, which favour neither side
    rate: float  # NaN without decisive votes; 0.5 means no bias
    ci_low: float | None  # Wilson interval
    ci_high: float | None
    p_value: float | None  # exact two-sided binomial test of rate = 0.5


def position_bias(votes: Sequence[str], confidence: float = 0.95) -> PositionBias:
    """From votes as shown (A = left, B = right, tie, both_bad)."""
    left = sum(1 for vote in votes if vote == "A")
    decisive = left + sum(1 for vote in votes if vote == "B")
    ties = len(votes) - decisive
    if decisive == 0:
        return PositionBias(0, 0, ties, math.nan, None, None, None)
    interval = stats.binomtest(left, decisive).proportion_ci(confidence_level=confidence, method="wilson")
    return PositionBias(
        left_wins=left,
        decisive=decisive,
        ties=ties,
        rate=left / decisive,
        ci_low=float(interval.low),
        ci_high=float(interval.high),
        p_value=float(stats.binomtest(left, decisive, 0.5).pvalue),
    )
