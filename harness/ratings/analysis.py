"""A campaign's results: human scores, pairwise ratings, agreement, rater checks, metric correlations.

Everything here reads the Parquet `ratings` shape (`ratings_frame` or `read_ratings`), so the
results page, `harness ratings summary` and anyone with pandas get the same numbers.

Choices the numbers depend on:
- Mean scores average each item over its raters first, then items, with a t interval over items:
  several raters of one item are not independent draws, items are.
- Gold items only check raters; they never enter scores, ratings or agreement. A rater is flagged
  when they answered at least `min_gold` gold items and passed (every checked answer accepted)
  fewer than `gold_threshold` of them; flagged raters are left out unless asked otherwise.
- Agreement: alpha at the interval level for rubric scores and the nominal level for pairwise
  votes (in the pair's canonical order, since each rater saw their own left/right order); Cohen's
  kappa per rater pair, quadratic-weighted for 1-5 scores and unweighted for votes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from harness.ratings.agreement import alpha_from_long, pairwise_kappas
from harness.ratings.bradley_terry import Comparison, PositionBias, bradley_terry, position_bias, win_rates
from harness.ratings.correlation import metric_correlations, preference_scores
from harness.ratings.rubric import SCALE_POINTS

__all__ = [
    "CampaignSummary",
    "canonical_votes",
    "comparisons",
    "human_scores",
    "rater_quality",
    "summarize",
]

_CANONICAL = ("a", "b", "tie", "both_bad")
_SCORE_COLUMNS = ["run_id", "question", "mean", "ci_low", "ci_high", "items", "ratings"]
_AGREEMENT_COLUMNS = ["question", "level", "alpha", "ci_low", "ci_high", "units", "values"]


def human_scores(ratings: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """run_id, question, mean, ci_low, ci_high, items, ratings for the rubric rows of `ratings`."""
    rubric = ratings[(ratings["mode"] == "rubric") & ~ratings["is_gold"] & ratings["value"].notna()]
    if rubric.empty:
        return pd.DataFrame(columns=_SCORE_COLUMNS)
    per_item = rubric.groupby(["run_id", "question", "item_id"])["value"].agg(["mean", "size"])
    rows = []
    for (run_id, question), group in per_item.groupby(level=["run_id", "question"], sort=True):
        means = group["mean"].to_numpy(dtype=np.float64)
        mean, items = float(means.mean()), len(means)
        low = high = math.nan
        if items >= 2:
            half = stats.t.ppf(0.5 + confidence / 2, items - 1) * means.std(ddof=1) / math.sqrt(items)
            low, high = mean - float(half), mean + float(half)
        rows.append((run_id, question, mean, low, high, items, int(group["size"].sum())))
    return pd.DataFrame(rows, columns=_SCORE_COLUMNS)


def rater_quality(ratings: pd.DataFrame, *, min_gold: int = 2, gold_threshold: float = 0.7) -> pd.DataFrame:
    """rater, items, gold_items, gold_passed, gold_accuracy, flagged."""
    columns = ["rater", "items", "gold_items", "gold_passed", "gold_accuracy", "flagged"]
    if ratings.empty:
        return pd.DataFrame(columns=columns)
    items = ratings.groupby("rater")["item_id"].nunique()
    checked = ratings[ratings["is_gold"] & ratings["gold_correct"].notna()]
    passed_items = checked.groupby(["rater", "item_id"])["gold_correct"].all()
    gold_items = passed_items.groupby(level="rater").size().reindex(items.index, fill_value=0)
    gold_passed = passed_items.groupby(level="rater").sum().reindex(items.index, fill_value=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = (gold_passed / gold_items).where(gold_items > 0)
    flagged = (gold_items >= min_gold) & (accuracy < gold_threshold)
    frame = pd.DataFrame(
        {
            "rater": items.index.astype(str),
            "items": items.to_numpy(),
            "gold_items": gold_items.to_numpy(dtype=np.int64),
            "gold_passed": gold_passed.to_numpy(dtype=np.int64),
            "gold_accuracy": accuracy.to_numpy(dtype=np.float64),
            "flagged": flagged.to_numpy(dtype=bool),
        }
    )
    return frame.sort_values("rater", ignore_index=True)


def canonical_votes(ratings: pd.DataFrame) -> pd.Series:
    """Each pairwise vote restated for the item's canonical pair: a, b, tie or both_bad."""
    winner = ratings["winner_run"]
    canonical = np.where(
        winner == ratings["run_a"], "a", np.where(winner == ratings["run_b"], "b", ratings["vote"])
    )
    return pd.Series(canonical, index=ratings.index, name="canonical")


def comparisons(ratings: pd.DataFrame) -> list[Comparison]:
    """Bradley–Terry input from the non-gold pairwise rows (both-bad counts as a tie)."""
    pairwise = ratings[(ratings["mode"] == "pairwise") & ~ratings["is_gold"]]
    scores = preference_scores(pairwise)
    return [
        Comparison(str(first), str(second), float(score))
        for first, second, score in zip(pairwise["run_a"], pairwise["run_b"], scores, strict=True)
    ]


def _agreement(ratings: pd.DataFrame, resamples: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows: list[dict[str, Any]] = []
    kappas: list[pd.DataFrame] = []
    for question, group in ratings.groupby("question", sort=True):
        if (group["mode"] == "rubric").all():
            long = pd.DataFrame({"unit": group["item_id"], "rater": group["rater"], "value": group["value"]})
            level, labels, weights = "interval", list(SCALE_POINTS), "quadratic"
        else:
            coded = canonical_votes(group).map({label: code for code, label in enumerate(_CANONICAL)})
            long = pd.DataFrame({"unit": group["item_id"], "rater": group["rater"], "value": coded})
            level, labels, weights = "nominal", list(range(len(_CANONICAL))), None
        result = alpha_from_long(long, level, resamples=resamples, seed=seed)  # type: ignore[arg-type]
        rows.append(
            {
                "question": question,
                "level": level,
                "alpha": result.alpha,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "units": result.units,
                "values": result.pairable,
            }
        )
        pair_table = pairwise_kappas(long, labels=labels, weights=weights)  # type: ignore[arg-type]
        kappas.append(pair_table.assign(question=question))
    agreement = pd.DataFrame(rows, columns=_AGREEMENT_COLUMNS)
    kappa_columns = ["question", "rater_a", "rater_b", "shared", "kappa"]
    nonempty = [table for table in kappas if not table.empty]
    kappa = (
        pd.concat(nonempty, ignore_index=True)[kappa_columns]
        if nonempty
        else pd.DataFrame(columns=kappa_columns)
    )
    return agreement, kappa


@dataclass(frozen=True)
class CampaignSummary:
    mode: str
    ratings: int  # non-gold ratings analysed
    raters: pd.DataFrame  # rater_quality, every rater
    excluded_raters: tuple[str, ...]
    scores: pd.DataFrame  # rubric: human_scores; pairwise: Bradley–Terry ratings
    agreement: pd.DataFrame
    kappas: pd.DataFrame
    correlations: pd.DataFrame
    win_rates: pd.DataFrame | None = None  # pairwise only
    position_bias: PositionBias | None = None  # pairwise only
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tables as lists of records, NaN as None."""

        def records(frame: pd.DataFrame | None) -> list[dict[str, Any]] | None:
            if frame is None:
                return None
            clean = frame.astype(object).where(frame.notna(), None)
            return [
                {str(key): value for key, value in row.items()} for row in clean.to_dict(orient="records")
            ]

        bias = self.position_bias
        return {
            "mode": self.mode,
            "ratings": self.ratings,
            "raters": records(self.raters),
            "excluded_raters": list(self.excluded_raters),
            "scores": records(self.scores),
            "agreement": records(self.agreement),
            "kappas": records(self.kappas),
            "correlations": records(self.correlations),
            "win_rates": None
            if self.win_rates is None
            else records(self.win_rates.reset_index(names="run_id")),
            "position_bias": None
            if bias is None
            else {
                key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in vars(bias).items()
            },
            "notes": list(self.notes),
        }


def summarize(
    ratings: pd.DataFrame,
    *,
    mode: str,
    metric_values: pd.DataFrame | None = None,
    exclude_flagged: bool = True,
    min_gold: int = 2,
    gold_threshold: float = 0.7,
    resamples: int = 1000,
    seed: int = 0,
) -> CampaignSummary:
    """Everything the results page and `harness ratings summary` show for one campaign's ratings."""
    raters = rater_quality(ratings, min_gold=min_gold, gold_threshold=gold_threshold)
    flagged = tuple(raters.loc[raters["flagged"], "rater"]) if not raters.empty else ()
    excluded = flagged if exclude_flagged else ()
    kept = ratings[~ratings["is_gold"] & ~ratings["rater"].isin(excluded)]
    notes: list[str] = []
    if kept.empty:
        notes.append("No ratings to analyse yet.")
    if flagged:
        verb = "left out" if exclude_flagged else "kept"
        notes.append(f"Raters who failed gold checks ({verb}): {', '.join(flagged)}.")
    agreement, kappas = _agreement(kept, resamples, seed)
    correlations = metric_correlations(kept, metric_values) if metric_values is not None else pd.DataFrame()
    if mode == "rubric":
        return CampaignSummary(
            mode,
            len(kept),
            raters,
            excluded,
            human_scores(kept),
            agreement,
            kappas,
            correlations,
            notes=tuple(notes),
        )
    votes = comparisons(kept)
    players = sorted({c.first for c in votes} | {c.second for c in votes})
    scores = pd.DataFrame()
    if votes:
        try:
            scores = bradley_terry(votes, resamples=resamples, seed=seed).to_frame()
        except ValueError as error:
            notes.append(f"No Bradley–Terry ratings: {error}.")
    return CampaignSummary(
        mode,
        len(kept),
        raters,
        excluded,
        scores,
        agreement,
        kappas,
        correlations,
        win_rates=win_rates(players, votes),
        position_bias=position_bias(list(kept["vote"].dropna())),
        notes=tuple(notes),
    )
