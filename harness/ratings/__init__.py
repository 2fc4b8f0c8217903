"""Human evaluation: campaigns of rubric ratings and blind pairwise votes over runs in the store.

- `db`: the ratings database (SQLite, WAL) every submission is committed to, exactly once; raters
  sign in with personal tokens kept only as hashes (`access`), and rate only items served to them.
- `campaign`: campaign items from the store's samples, plus hand-written gold items.
- `export`: the Parquet `ratings` table in the store, for the leaderboard and plain readers.
  A store in object storage (`s3://`) keeps its database on this machine and gets the table uploaded.
- `analysis`: human scores, Bradley–Terry ratings, agreement, rater checks and metric correlations.

The Streamlit pages (`leaderboard/views/rate_*.py`, `human_results.py`) only call these.
"""

from __future__ import annotations

from harness.ratings.access import Identity, Invitation
from harness.ratings.agreement import Agreement, alpha_from_long, cohen_kappa, krippendorff_alpha
from harness.ratings.analysis import CampaignSummary, human_scores, rater_quality, summarize
from harness.ratings.bradley_terry import BradleyTerry, Comparison, bradley_terry, fit_bradley_terry
from harness.ratings.campaign import CampaignPlan, load_gold, plan_campaign
from harness.ratings.db import DB_FILE_NAME, RatingsDB, normalise_rater
from harness.ratings.errors import ItemNotAssignedError, RatingsBusyError, RatingsError, SignInError
from harness.ratings.export import (
    RATINGS_SCHEMA,
    export_campaign,
    export_ratings,
    ratings_frame,
    read_ratings,
)
from harness.ratings.records import (
    VOTES,
    Campaign,
    CampaignProgress,
    Item,
    RaterProgress,
    ServedItem,
    SubmitResult,
)
from harness.ratings.rubric import PAIRWISE_QUESTION, Criterion, Rubric, load_rubric

__all__ = [
    "DB_FILE_NAME",
    "PAIRWISE_QUESTION",
    "RATINGS_SCHEMA",
    "VOTES",
    "Agreement",
    "BradleyTerry",
    "Campaign",
    "CampaignPlan",
    "CampaignProgress",
    "CampaignSummary",
    "Comparison",
    "Criterion",
    "Identity",
    "Invitation",
    "Item",
    "ItemNotAssignedError",
    "RaterProgress",
    "RatingsBusyError",
    "RatingsDB",
    "RatingsError",
    "Rubric",
    "ServedItem",
    "SignInError",
    "SubmitResult",
    "alpha_from_long",
    "bradley_terry",
    "cohen_kappa",
    "export_campaign",
    "export_ratings",
    "fit_bradley_terry",
    "human_scores",
    "krippendorff_alpha",
    "load_gold",
    "load_rubric",
    "normalise_rater",
    "plan_campaign",
    "rater_quality",
    "ratings_frame",
    "read_ratings",
    "summarize",
]
