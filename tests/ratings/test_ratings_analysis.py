"""Campaign analysis: human scores, Bradley–Terry from votes, agreement, gold checks, correlations."""

from __future__ import annotations

import math
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.ratings import RatingsDB, load_gold, load_rubric, plan_campaign, ratings_frame, summarize
from harness.ratings.analysis import canonical_votes, human_scores, rater_quality
from harness.ratings.correlation import sample_metric_values
from harness.store import ResultStore
from tests.ratings.test_ratings_support import ROOT, RUBRIC_PATH, two_run_store


def _pairwise(tmp_path: Path) -> tuple[ResultStore, RatingsDB, str, str]:
    """Two careful raters who prefer `good` and pass gold; one who always clicks A (the left answer)."""
    store = ResultStore(tmp_path / "store")
    good, bad = two_run_store(store.root, documents=20)
    db = RatingsDB.for_store(store.root)
    gold = load_gold(ROOT / "examples" / "gold_pairwise.yaml", "pairwise")
    plan = plan_campaign(store, campaign_id="pw", mode="pairwise", runs=[good, bad], overlap=3, gold=gold)
    db.create_campaign(plan.campaign, plan.items)
    expected = {"gold-001": "gold:a", "gold-002": "gold:b"}
    for name in ("ann", "bob", "lazy"):
        rater = db.register_rater("pw", name)
        while (served := db.next_item("pw", rater)) is not None:
            item, order = served.item, served.display_order
            if name == "lazy":
                vote = "A"
            elif item.is_gold:
                winner = expected.get(item.item_id)
                vote = "both_bad" if winner is None else ("A" if order[0] == winner else "B")
            elif name == "bob" and item.doc_id is not None and item.doc_id % 2 == 1:
                vote = "tie"  # good guessed wrong on odd documents: bob calls those a tie
            else:
                vote = "A" if order[0] == good else "B"
            db.submit("pw", rater, item.item_id, {"preference": vote}, display_order=order)
    return store, db, good, bad


def test_pairwise_summary(tmp_path: Path) -> None:
    store, db, good, bad = _pairwise(tmp_path)
    ratings = ratings_frame(db, "pw")
    raters = rater_quality(ratings)
    assert raters.set_index("rater")["flagged"].to_dict() == {"ann": False, "bob": False, "lazy": True}
    assert raters.set_index("rater").loc["ann", "gold_accuracy"] == 1.0

    summary = summarize(
        ratings, mode="pairwise", metric_values=sample_metric_values(store.samples()), resamples=200
    )
    assert summary.excluded_raters == ("lazy",)
    assert summary.ratings == 40
    board = summary.scores.set_index("run_id")
    assert board.loc[good, "theta"] > 0 > board.loc[bad, "theta"]
    assert board.loc[good, "theta_low"] < board.loc[good, "theta"] < board.loc[good, "theta_high"]
    assert summary.win_rates is not None
    assert summary.win_rates.loc[good, bad] == pytest.approx(
        (20 + 10 + 5) / 40
    )  # ann 20 wins, bob 10 + 10 ties
    bias = summary.position_bias
    assert bias is not None and bias.decisive == 30 and bias.ties == 10

    kept = ratings[~ratings["is_gold"] & (ratings["rater"] != "lazy")]
    codes = canonical_votes(kept).map({"a": 0, "b": 1, "tie": 2, "both_bad": 3})
    matrix = pd.DataFrame({"r": kept["rater"], "u": kept["item_id"], "v": codes}).pivot(
        index="r", columns="u", values="v"
    )
    (agreement,) = summary.agreement.itertuples()
    assert agreement.level == "nominal"
    assert agreement.alpha == pytest.approx(
        krippendorff.alpha(matrix.to_numpy(float), level_of_measurement="nominal")
    )
    assert summary.kappas[["rater_a", "rater_b", "shared"]].values.tolist() == [["ann", "bob", 20]]
    (correlation,) = summary.correlations.itertuples()
    # Humans prefer good exactly where its exact match is higher (even documents): a strong positive link.
    assert (correlation.metric, correlation.n) == ("exact_match", 20)
    assert correlation.spearman == pytest.approx(1.0)

    everyone = summarize(ratings, mode="pairwise", exclude_flagged=False, resamples=0)
    assert everyone.ratings == 60 and everyone.excluded_raters == ()
    assert everyone.position_bias is not None and everyone.position_bias.left_wins > bias.left_wins
    assert "kept" in everyone.notes[0]
    assert set(everyone.to_dict()) >= {"scores", "agreement", "kappas", "correlations", "position_bias"}


def test_rubric_scores_average_items_first(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    good, bad = two_run_store(store.root, documents=6)
    db = RatingsDB.for_store(store.root)
    plan = plan_campaign(
        store, campaign_id="r", mode="rubric", runs=[good, bad], rubric=load_rubric(RUBRIC_PATH), overlap=2
    )
    db.create_campaign(plan.campaign, plan.items)
    for name, shift in (("ann", 0), ("bob", 1)):
        rater = db.register_rater("r", name)
        while (served := db.next_item("r", rater)) is not None:
            item = served.item
            right = item.outputs[0] == item.target
            score = min(5, (4 if right else 1) + shift)
            answers = {"correctness": score, "clarity": 3}
            db.submit("r", rater, item.item_id, answers, display_order=served.display_order)
    ratings = ratings_frame(db, "r")
    scores = human_scores(ratings).set_index(["run_id", "question"])
    # good: right on documents 0, 2, 4 (item means 4.5), wrong on 1, 3, 5 (1.5).
    item_means = np.array([4.5, 1.5, 4.5, 1.5, 4.5, 1.5])
    row = scores.loc[(good, "correctness")]
    half = stats.t.ppf(0.975, 5) * item_means.std(ddof=1) / math.sqrt(6)
    assert (row["mean"], row["items"], row["ratings"]) == (3.0, 6, 12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((3.0 - half, 3.0 + half))
    assert scores.loc[(bad, "correctness"), "mean"] == 1.5
    # Everyone said 3 on clarity: the interval has zero width (it is not missing).
    clarity = scores.loc[(bad, "clarity")]
    assert (clarity["mean"], clarity["ci_low"], clarity["ci_high"]) == (3.0, 3.0, 3.0)

    summary = summarize(
        ratings, mode="rubric", metric_values=sample_metric_values(store.samples()), resamples=100
    )
    agreement = summary.agreement.set_index("question")
    assert agreement.loc["correctness", "level"] == "interval"
    assert 0.0 < agreement.loc["correctness", "alpha"] < 1.0  # bob is one point more generous
    assert math.isnan(agreement.loc["clarity", "alpha"])  # everyone said 3: nothing to agree on
    correlations = summary.correlations.set_index("question")
    assert correlations.loc["correctness", "spearman"] == pytest.approx(1.0)
    kappa = summary.kappas.set_index("question").loc["correctness", "kappa"]
    assert 0.0 < kappa < 1.0


def test_empty_campaign_summaries(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    good, bad = two_run_store(store.root, documents=2)
    db = RatingsDB.for_store(store.root)
    plan = plan_campaign(store, campaign_id="pw", mode="pairwise", runs=[good, bad])
    db.create_campaign(plan.campaign, plan.items)
    summary = summarize(ratings_frame(db, "pw"), mode="pairwise")
    assert summary.ratings == 0 and summary.scores.empty and summary.notes == ("No ratings to analyse yet.",)
