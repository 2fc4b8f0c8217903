"""Do the 95% intervals of corpus metrics cover the true value 93-97% of the time?

Each case draws per-document statistics from a known distribution, so the true (population) value
is the metric's aggregate of the expected statistics; 400 seeded trials of the real scoring path
(BCa bootstrap intervals for corpus metrics, the closed form for means) count how often the
interval covers it. An interval that is too narrow or too wide, or a bootstrap that resampled the
wrong thing, lands outside the band.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from harness.metrics import Metric, get_metric, score, score_many

TRIALS = 400
DOCUMENTS = 300
RESAMPLES = 1000  # the default; with a few hundred the interval ends are noticeably noisier
Draw = Callable[[np.random.Generator, int], np.ndarray]


def _bleu_draw(rng: np.random.Generator, n: int) -> np.ndarray:
    # Hypotheses of 5-34 tokens, references a little shorter (no brevity-penalty kink), each
    # n-gram matching with probability 0.6, 0.4, 0.3, 0.2.
    hyp_len = rng.integers(5, 35, n).astype(float)
    ref_len = np.maximum(hyp_len - rng.integers(0, 4, n), 1)
    totals = np.maximum(hyp_len[:, None] - np.arange(4)[None, :], 0)
    correct = rng.binomial(totals.astype(int), [0.6, 0.4, 0.3, 0.2]).astype(float)
    return np.column_stack([hyp_len, ref_len, correct, totals])


def _bleu_expected() -> np.ndarray:
    hyp_len = np.arange(5, 35, dtype=float)
    totals = np.maximum(hyp_len[:, None] - np.arange(4)[None, :], 0).mean(axis=0)
    return np.concatenate(
        [[hyp_len.mean(), hyp_len.mean() - 1.5], np.array([0.6, 0.4, 0.3, 0.2]) * totals, totals]
    )


def _chrf_draw(rng: np.random.Generator, n: int) -> np.ndarray:
    hyp = rng.integers(20, 120, n).astype(float)
    ref = rng.integers(20, 120, n).astype(float)
    columns = []
    for order, rate in enumerate([0.8, 0.6, 0.5, 0.4, 0.3, 0.25]):
        h, r = np.maximum(hyp - order, 0), np.maximum(ref - order, 0)
        columns += [h, r, rng.binomial(np.minimum(h, r).astype(int), rate).astype(float)]
    return np.column_stack(columns)


def _chrf_expected() -> np.ndarray:
    lengths = np.arange(20, 120, dtype=float)
    hyp, ref = lengths, lengths
    expected = []
    for order, rate in enumerate([0.8, 0.6, 0.5, 0.4, 0.3, 0.25]):
        h, r = np.maximum(hyp - order, 0), np.maximum(ref - order, 0)
        # E[min(H, R)] for independent uniform H, R on the same support.
        pairwise = np.minimum(h[:, None], r[None, :]).mean()
        expected += [h.mean(), r.mean(), rate * pairwise]
    return np.asarray(expected)


def _rouge_draw(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack([rng.beta(2.0, 3.0, n), np.ones(n)])  # per-document F, mean 0.4


def _f1_draw(rng: np.random.Generator, n: int) -> np.ndarray:
    # Three classes; the confusion probabilities P(gold, predicted) are fixed.
    cells = rng.choice(9, size=n, p=CONFUSION.ravel())
    gold, predicted = np.divmod(cells, 3)
    columns = []
    for label in range(3):
        is_gold, is_predicted = gold == label, predicted == label
        columns += [is_gold & is_predicted, is_predicted, is_gold]
    return np.column_stack(columns).astype(float)


CONFUSION = np.array([[0.30, 0.05, 0.05], [0.04, 0.20, 0.06], [0.03, 0.07, 0.20]])


def _f1_expected() -> np.ndarray:
    expected = []
    for label in range(3):
        expected += [CONFUSION[label, label], CONFUSION[:, label].sum(), CONFUSION[label, :].sum()]
    return np.asarray(expected)


CASES: list[tuple[str, dict[str, object], Draw, Callable[[], np.ndarray]]] = [
    ("bleu", {}, _bleu_draw, _bleu_expected),
    ("chrf", {}, _chrf_draw, _chrf_expected),
    ("rougeL", {}, _rouge_draw, lambda: np.array([0.4, 1.0])),
    ("f1_macro", {"labels": ["a", "b", "c"]}, _f1_draw, _f1_expected),
]


def test_bootstrap_interval_coverage() -> None:
    metrics: list[Metric] = [get_metric(name, **settings) for name, settings, _, _ in CASES]
    assert not any(metric.is_mean for metric in metrics)  # these go through the bootstrap
    truth = [
        float(metric.aggregate(expected()))
        for metric, (_, _, _, expected) in zip(metrics, CASES, strict=True)
    ]
    rng = np.random.default_rng(20261121)
    covered = np.zeros(len(CASES), dtype=int)
    for trial in range(TRIALS):
        # Independent data per metric; one set of resampling draws per trial serves all of them.
        stats = [draw(rng, DOCUMENTS) for _, _, draw, _ in CASES]
        results = score_many(metrics, stats, bootstrap_resamples=RESAMPLES, seed=trial)
        for index, (result, true_value) in enumerate(zip(results, truth, strict=True)):
            assert result.ci_low is not None and result.ci_high is not None
            covered[index] += result.ci_low <= true_value <= result.ci_high
    rates = {name: count / TRIALS for (name, *_), count in zip(CASES, covered, strict=True)}
    assert all(0.93 <= rate <= 0.97 for rate in rates.values()), rates


def test_token_f1_closed_form_interval_coverage() -> None:
    metric = get_metric("token_f1")
    assert metric.is_mean
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(TRIALS):
        values = rng.beta(0.5, 0.5, DOCUMENTS)  # U-shaped, like per-answer F1; mean 0.5
        result = score(metric, np.column_stack([values, np.ones(DOCUMENTS)]))
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= 0.5 <= result.ci_high
    assert 0.93 <= covered / TRIALS <= 0.97


def test_score_many_shares_draws_and_equals_score() -> None:
    rng = np.random.default_rng(3)
    metrics = [get_metric("bleu"), get_metric("rougeL"), get_metric("token_f1")]
    stats = [_bleu_draw(rng, 200), _rouge_draw(rng, 200), _rouge_draw(rng, 200)]
    together = score_many(metrics, stats, bootstrap_resamples=300, seed=5)
    for metric, matrix, joint in zip(metrics, stats, together, strict=True):
        alone = score(metric, matrix, bootstrap_resamples=300, seed=5)
        assert joint.value == alone.value and joint.signature == alone.signature
        assert joint.ci_low == pytest.approx(alone.ci_low, rel=1e-12)
        assert joint.ci_high == pytest.approx(alone.ci_high, rel=1e-12)
