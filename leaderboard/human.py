"""What the human-evaluation pages share: the ratings database, sign-in, campaign picker, progress.

Storage and statistics live in `harness.ratings`; this module is only the Streamlit glue, plus the
few plain functions the pages' wording depends on (tested directly).

A rater identifies with a name. When the app's secrets set `[ratings] passcode = "..."`, the
passcode is required too; when they configure Streamlit's OpenID login (an `[auth]` section), the
logged-in user's e-mail is the rater name instead and nothing is typed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.ratings import Campaign, RatingsDB, RatingsError, export_campaign, normalise_rater
from harness.ratings.records import Mode
from leaderboard.data import list_store, load_store
from leaderboard.ui import STORE_KEY, configured_store

__all__ = [
    "VOTE_LABELS",
    "check_passcode",
    "configured_passcode",
    "export_quietly",
    "flash",
    "pick_campaign",
    "ratings_db",
    "run_names",
    "show_flash",
    "show_progress",
    "sign_in",
    "store_root",
]

VOTE_LABELS = {"A": "A is better", "B": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
RATER_KEY = "human_rater"  # the signed-in rater's id, shared by every human page of the session
_FLASH_KEY = "human_flash"


def check_passcode(expected: str | None, given: str) -> bool:
    """True when no passcode is configured, or `given` is it (compared in constant time)."""
    if not expected:
        return True
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def _secrets_section(name: str) -> Mapping[str, Any]:
    try:
        section = st.secrets.get(name)
    except Exception:  # no secrets file at all: Streamlit raises rather than returning nothing
        return {}
    return section if isinstance(section, Mapping) else {}


def configured_passcode() -> str | None:
    value = _secrets_section("ratings").get("passcode")
    return str(value) if value else None


def _login_configured() -> bool:
    return bool(_secrets_section("auth"))


def store_root() -> str:
    return str(st.session_state.get(STORE_KEY) or configured_store())


def ratings_db() -> RatingsDB | None:
    """The store's ratings database, or None after saying how to create a campaign."""
    root = store_root()
    db = RatingsDB.for_store(root)
    if not db.exists():
        st.info(
            f"No rating campaigns in {root} yet. Create one with "
            f"`harness ratings campaign NAME --mode rubric|pairwise --runs RUN ... --store {root}`."
        )
        return None
    return db


def pick_campaign(db: RatingsDB, modes: tuple[Mode, ...], *, key: str) -> Campaign | None:
    try:
        campaigns = [c for c in db.campaigns() if c.mode in modes]
    except RatingsError as error:
        st.error(str(error))
        return None
    if not campaigns:
        st.info(f"No {' or '.join(modes)} campaign yet; create one with `harness ratings campaign`.")
        return None
    by_id = {c.campaign_id: c for c in campaigns}
    chosen = st.selectbox(
        "Campaign",
        list(by_id)[::-1],  # newest first
        key=key,
        format_func=lambda campaign_id: f"{campaign_id} ({by_id[campaign_id].mode})",
    )
    campaign = by_id[str(chosen)]
    if campaign.description:
        st.caption(campaign.description)
    return campaign


def _sign_out() -> None:
    st.session_state.pop(RATER_KEY, None)


def sign_in(db: RatingsDB, campaign: Campaign) -> str | None:
    """The rater's id once they are identified and allowed in this campaign; None while signing in."""
    rater = st.session_state.get(RATER_KEY)
    if rater is None and _login_configured():
        if not st.user.is_logged_in:
            st.info("Log in to rate.")
            st.button("Log in", on_click=st.login, key="human_login")
            return None
        rater = str(st.user.get("email") or st.user.get("name") or "")
    if rater is None:
        passcode = configured_passcode()
        with st.form("human_sign_in"):
            st.markdown("**Who is rating?**")
            name = st.text_input("Your name", key="human_name", max_chars=64)
            given = st.text_input("Passcode", type="password", key="human_passcode") if passcode else ""
            if not st.form_submit_button("Start rating", type="primary"):
                return None
        if not check_passcode(passcode, str(given)):
            st.error("That passcode is not right; ask the campaign's organiser.")
            return None
        rater = str(name)
    try:
        rater = db.register_rater(campaign.campaign_id, normalise_rater(rater))
    except RatingsError as error:
        st.error(str(error))
        st.button("Sign out", on_click=_sign_out, key="human_sign_out_refused")
        return None
    st.session_state[RATER_KEY] = rater
    st.sidebar.caption(f"Rating as **{rater}**")
    st.sidebar.button("Sign out", on_click=_sign_out, key="human_sign_out")
    return rater


def flash(kind: str, text: str) -> None:
    """A message to show after the rerun that follows a submission."""
    st.session_state[_FLASH_KEY] = (kind, text)


def show_flash() -> None:
    kind, text = st.session_state.pop(_FLASH_KEY, (None, None))
    if kind == "success":
        st.success(text)
    elif kind == "warning":
        st.warning(text)


def show_progress(db: RatingsDB, campaign: Campaign, rater: str) -> None:
    mine = db.rater_progress(campaign.campaign_id, rater)
    everyone = db.campaign_progress(campaign.campaign_id)
    left, right = st.columns(2)
    done = mine.rated + mine.skipped
    left.progress(
        done / mine.total if mine.total else 1.0,
        text=f"You: {mine.rated} rated, {mine.skipped} skipped, {mine.remaining} to go",
    )
    right.progress(
        min(everyone.fraction, 1.0),
        text=(
            f"Campaign: {everyone.ratings_done} of {everyone.ratings_needed} ratings "
            f"({everyone.complete_items} of {everyone.items} items done, {everyone.raters} raters)"
        ),
    )


def export_quietly(db: RatingsDB, campaign_id: str) -> None:
    """Refresh the store's Parquet ratings table; the rating itself is already safe in the database."""
    try:
        export_campaign(db, store_root(), campaign_id)
    except (HarnessError, OSError) as error:
        st.warning(f"Your rating is saved, but the ratings table could not be refreshed: {error}")


@st.cache_data(show_spinner=False, max_entries=8)
def _runs(key: str, root: str) -> pd.DataFrame:
    del key  # the store listing's digest: a new run changes it
    data = load_store(list_store(root))
    return data.runs if data.error is None else pd.DataFrame()


def run_names(run_ids: tuple[str, ...]) -> dict[str, str]:
    """A readable name per run (model · experiment@step · id), for revealing a pair after the vote."""
    root = store_root()
    runs = _runs(list_store(root).key, root)
    names = {run_id: run_id for run_id in run_ids}
    if runs.empty:
        return names
    for row in runs[runs["run_id"].isin(run_ids)].itertuples():
        experiment = row.experiment if isinstance(row.experiment, str) else "-"
        step = "" if pd.isna(row.step) else f"@{int(row.step)}"
        names[str(row.run_id)] = f"{row.model} · {experiment}{step} · {row.run_id}"
    return names
