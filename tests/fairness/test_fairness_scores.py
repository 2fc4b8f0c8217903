"""Fairness score rows: names, directions, signatures, and what bad input produces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.fairness import Decisions, decision_fairness, group_design, group_metric_frame, group_scores
from harness.fairness.scores import prediction_group_scores
from harness.metrics import SampleOutcome, Score, get_metric, statistics_matrix
from harness.metrics.corpus import score_texts


def _acc_statistics(correct: list[int]) -> np.ndarray:
    return np.column_stack([correct, np.ones(len(correct))]).astype(float)


def _by_name(scores: list[Score]) -> dict[str, Score]:
    return {item.metric: item for item in scores}


def _signature_value(signature: str, key: str) -> str:
    for part in signature.split("|"):
        name, _, value = part.partition(":")
        if name == key:
            return value
    raise KeyError(key)


def _biased_decisions(n_per_group: int = 30) -> tuple[Decisions, list[str]]:
    """Group a is selected far more often than group b, at equal merit."""
    rng = np.random.default_rng(1)
    groups = ["a"] * n_per_group + ["b"] * n_per_group
    y_true = rng.random(2 * n_per_group) < 0.5
    y_true[:2] = [True, False]
    y_true[n_per_group : n_per_group + 2] = [True, False]
    y_pred = np.where(
        np.array(groups) == "a", rng.random(2 * n_per_group) < 0.9, rng.random(2 * n_per_group) < 0.2
    )
    return Decisions(y_true, y_pred, "approve"), groups


def test_rows_are_named_directed_and_signed() -> None:
    decisions, groups = _biased_decisions()
    acc = get_metric("acc")
    correct = (decisions.y_true == decisions.y_pred).astype(int).tolist()
    scores = _by_name(
        group_scores([acc], [_acc_statistics(correct)], groups, decisions=decisions, group_field="applicant")
    )
    expected_direction = {
        "group/acc/a": True,
        "group/acc/b": True,
        "fairness/acc/difference": False,
        "fairness/acc/ratio": True,
        "fairness/acc/worst_group": True,
        "group/selection_rate/a": True,
        "group/selection_rate/b": True,
        "fairness/demographic_parity_difference": False,
        "fairness/demographic_parity_ratio": True,
        "fairness/equalized_odds_difference": False,
        "fairness/equal_opportunity_difference": False,
    }
    assert {name: item.higher_is_better for name, item in scores.items()} == expected_direction
    dp = scores["fairness/demographic_parity_difference"]
    assert dp.n == 60 and dp.ci_low is not None and dp.ci_high is not None
    assert 0 < dp.ci_low <= dp.value <= dp.ci_high  # a real gap: the interval stays clear of 0
    signature = dp.signature
    assert signature.startswith("fairness/demographic_parity_difference|")
    assert _signature_value(signature, "group_field") == "applicant"
    assert _signature_value(signature, "favorable") == "approve"
    assert _signature_value(signature, "interval") == "stratified-bootstrap"
    assert _signature_value(signature, "small_groups") == "[]"
    group_row = scores["group/acc/a"]
    assert _signature_value(group_row.signature, "group") == "a"
    assert _signature_value(group_row.signature, "interval") == "metric"
    assert group_row.value == pytest.approx(np.mean(correct[:30]))


def test_groups_missing_in_some_rows_are_left_out_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    acc = get_metric("acc")
    correct = [1, 0] * 15
    groups: list[str | None] = ["a"] * 12 + [None] * 6 + ["b"] * 12
    scores = _by_name(group_scores([acc], [_acc_statistics(correct)], groups, where="task 't'"))
    err = capsys.readouterr().err
    assert "task 't': 6 of 30 samples have no group value" in err
    assert scores["fairness/acc/difference"].n == 24
    assert _signature_value(scores["fairness/acc/difference"].signature, "ungrouped") == "6"


def test_one_group_is_not_computable_never_zero(capsys: pytest.CaptureFixture[str]) -> None:
    acc = get_metric("acc")
    decisions = Decisions(np.array([True, False] * 10), np.array([True] * 20), "yes")
    scores = group_scores([acc], [_acc_statistics([1, 0] * 10)], ["only"] * 20, decisions=decisions)
    names = {item.metric for item in scores}
    assert names == {"group/acc/only", "group/selection_rate/only"}
    assert not any(name.startswith("fairness/") for name in names)
    err = capsys.readouterr().err
    assert "only one group ('only')" in err
    assert "not computable" in err and "fairness/demographic_parity_difference" in err
    result = decision_fairness(decisions, group_design(["only"] * 20), bootstrap_resamples=0)
    assert math.isnan(result.demographic_parity_difference.value)
    assert math.isnan(result.equalized_odds_difference.value)
    frame = group_metric_frame(acc, _acc_statistics([1, 0] * 10), group_design(["only"] * 20))
    assert math.isnan(frame.difference.value) and frame.worst_group_name is None


def test_small_groups_are_warned_about_and_flagged(capsys: pytest.CaptureFixture[str]) -> None:
    acc = get_metric("acc")
    groups = ["big"] * 20 + ["tiny"] * 3
    scores = _by_name(group_scores([acc], [_acc_statistics([1, 0, 1] * 7 + [0, 0])], groups))
    assert "groups with fewer than 10 samples: 'tiny' (3);" in capsys.readouterr().err
    assert _signature_value(scores["fairness/acc/difference"].signature, "small_groups") == '["tiny"]'
    assert _signature_value(scores["group/acc/tiny"].signature, "small") == "yes"
    assert _signature_value(scores["group/acc/big"].signature, "small") == "no"


def test_a_group_without_positives_makes_equal_opportunity_not_computable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    y_true = np.array([True, False] * 10 + [False] * 20)
    y_pred = np.array([True, True] * 10 + [True, False] * 10)
    groups = ["a"] * 20 + ["b"] * 20
    scores = _by_name(group_scores([], [], groups, decisions=Decisions(y_true, y_pred, "1")))
    assert "fairness/demographic_parity_difference" in scores
    assert "fairness/equal_opportunity_difference" not in scores
    assert "fairness/equalized_odds_difference" not in scores
    assert "fairness/equal_opportunity_difference" in capsys.readouterr().err


def test_mismatched_inputs_are_errors() -> None:
    acc = get_metric("acc")
    with pytest.raises(HarnessError, match="3 samples for 2 groups"):
        group_scores([acc], [_acc_statistics([1, 0, 1])], ["a", "b"])
    with pytest.raises(HarnessError, match="1 metrics but 0"):
        group_scores([acc], [], ["a"])


def test_no_bootstrap_gives_values_without_intervals() -> None:
    decisions, groups = _biased_decisions()
    scores = _by_name(group_scores([], [], groups, decisions=decisions, bootstrap_resamples=0))
    dp = scores["fairness/demographic_parity_difference"]
    selected = [decisions.y_pred[np.array(groups) == group].mean() for group in ("a", "b")]
    assert dp.stderr is None and dp.ci_low is None and dp.ci_high is None
    assert dp.value == pytest.approx(max(selected) - min(selected), abs=1e-12)  # the gap in selection rates


def test_predictions_scored_elsewhere_get_parity_rows_from_labels(capsys: pytest.CaptureFixture[str]) -> None:
    labels = ["pos", "neg"] * 20
    predictions = ["pos", "pos", "neg", "neg"] * 5 + ["pos", "neg"] * 10
    groups = ["a"] * 20 + ["b"] * 20
    result = score_texts(["f1"], predictions, labels=labels, settings={"f1": {"pos_label": "pos"}})
    scores = _by_name(
        prediction_group_scores(
            result.metrics,
            result.statistics,
            groups,
            labels=labels,
            predictions=predictions,
            group_field="team",
        )
    )
    assert scores["group/f1/b"].value == pytest.approx(1.0)
    assert scores["fairness/demographic_parity_difference"].value == pytest.approx(0.0)
    assert scores["fairness/equal_opportunity_difference"].value == pytest.approx(0.5)
    assert _signature_value(scores["fairness/equal_opportunity_difference"].signature, "favorable") == "pos"
    # Without a binary metric naming the favourable label, parity rows are skipped, with a note.
    accuracy = score_texts(["acc"], predictions, labels=labels)
    rows = prediction_group_scores(
        accuracy.metrics, accuracy.statistics, groups, labels=labels, predictions=predictions
    )
    assert {item.metric for item in rows} >= {"group/acc/a", "fairness/acc/difference"}
    assert not any("parity" in item.metric for item in rows)
    assert "name the favourable label" in capsys.readouterr().err


def test_any_metric_not_only_accuracy() -> None:
    perplexity = get_metric("perplexity")
    outcomes = [SampleOutcome("loglikelihood", logprob=-v, num_tokens=2) for v in np.linspace(1, 4, 24)]
    scores = _by_name(
        group_scores([perplexity], [statistics_matrix(perplexity, outcomes)], ["early"] * 12 + ["late"] * 12)
    )
    assert scores["fairness/perplexity/worst_group"].higher_is_better is False
    assert scores["fairness/perplexity/worst_group"].value == pytest.approx(
        scores["group/perplexity/late"].value
    )
    assert scores["fairness/perplexity/ratio"].value < 1.0


def test_paired_groups_are_resampled_by_template() -> None:
    # Twenty templates, each asked for groups a and b; the model decides by template only.
    templates = [f"t{i}" for i in range(20) for _ in range(2)]
    groups = ["a", "b"] * 20
    y_true = np.array([i % 2 == 0 for i in range(20) for _ in range(2)])
    same = Decisions(y_true, np.array([i % 3 == 0 for i in range(20) for _ in range(2)]), "yes")
    paired = decision_fairness(same, group_design(groups), bootstrap_resamples=200, clusters=templates)
    dp = paired.demographic_parity_difference
    assert (dp.value, dp.ci_low, dp.ci_high) == (0.0, 0.0, 0.0)
    # Resampling each group on its own would invent a gap that the paired design does not have.
    unpaired = decision_fairness(same, group_design(groups), bootstrap_resamples=200)
    assert unpaired.demographic_parity_difference.ci_high is not None
    assert unpaired.demographic_parity_difference.ci_high > 0
    # Group b is refused on six templates where a is accepted: the paired interval sees the gap.
    differs = same.y_pred.copy()
    selected_templates = [0, 3, 6, 9, 12, 15]
    differs[[2 * i + 1 for i in selected_templates]] = False
    gap = decision_fairness(
        Decisions(y_true, differs, "yes"), group_design(groups), bootstrap_resamples=200, clusters=templates
    ).demographic_parity_difference
    assert gap.value == pytest.approx(0.3)
    assert gap.ci_low is not None and gap.ci_high is not None and 0 < gap.ci_low <= 0.3 <= gap.ci_high


def test_no_group_at_all_gives_no_rows_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    acc = get_metric("acc")
    assert group_scores([acc], [_acc_statistics([1, 0, 1])], [None, None, None], where="w") == []
    assert "w: no sample has a group value" in capsys.readouterr().err
    with pytest.raises(HarnessError, match="no sample has a group value"):
        group_metric_frame(acc, _acc_statistics([1, 0, 1]), group_design([None, None, None]))
