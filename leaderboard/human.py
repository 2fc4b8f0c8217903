"""What the human-evaluation pages share: the ratings database, rater sign-in, campaign picker, progress.

Storage and statistics live in `harness.ratings`; this module is only the Streamlit glue, plus the
few plain functions the pages' wording depends on (tested directly).

A rater signs in with the personal token of their invitation (`harness ratings invite CAMPAIGN
RATER`): opening the invitation link signs them in at once, or they paste the token. The token
says who they are and which campaign they rate; nobody types a name, so nobody can rate as someone
else. When the app's secrets configure Streamlit's OpenID login (an `[auth]` section), the
logged-in user's e-mail is the rater instead, checked against the campaign's rater list.

Item ids and run ids never reach the browser before a vote: widget keys use `ServedItem.key`, and
the item a form answers is bound to its callback on the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.leaderboard.ui import (
    plain,
    query_token,
    ratings_database,
    results_store_data,
    run_label,
    store_root,
    viewer_signed_in,
)
from harness.ratings import (
    Campaign,
    RatingsDB,
    RatingsError,
    ServedItem,
    bradley_terry,
    export_campaign,
    human_scores,
    normalise_rater,
    rater_quality,
    read_ratings,
)
from harness.ratings.access import Identity
from harness.ratings.analysis import comparisons
from harness.ratings.records import Mode, SubmitResult
from harness.store import list_store, load_store, part_entries

__all__ = [
    "HUMAN_PREFIX",
    "VOTE_LABELS",
    "cached_human_by_run",
    "export_quietly",
    "flash",
    "form_buttons",
    "human_by_run",
    "human_column_config",
    "pick_campaign",
    "rater_session",
    "ratings_db",
    "run_names",
    "show_flash",
    "show_progress",
    "skip_item",
    "store_root",
    "submit_answers",
    "with_human_columns",
]

HUMAN_PREFIX = "human "  # leaderboard columns from the ratings table: "human <campaign>/<criterion>"
VOTE_LABELS = {"A": "A is better", "B": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
IDENTITIES_KEY = "human_identities"  # campaign id -> the rater Identity this session signed in with
_OIDC_RATER_KEY = "human_oidc_rater"  # (campaign, rater) registered for the OpenID-logged-in user
_FLASH_KEY = "human_flash"


def _secrets_section(name: str) -> Mapping[str, Any]:
    try:
        section = st.secrets.get(name)
    except Exception:  # no secrets file at all: Streamlit raises rather than returning nothing
        return {}
    return section if isinstance(section, Mapping) else {}


def _login_configured() -> bool:
    return bool(_secrets_section("auth"))


def ratings_db(*, results: bool = False) -> RatingsDB | None:
    """The store's ratings database, or None after saying why there is none to use.

    `results`: the page shows results (not a rating form), so a private app asks for a viewer token."""
    if results and not viewer_signed_in():
        return None
    # No store, a newer one, or no runs: explained, in full only on results pages (raters who have not
    # signed in yet see no store path and no run ids).
    if results_store_data(details=results) is None:
        return None
    db = ratings_database()
    if not db.exists():
        st.info(
            "No rating campaigns in this store yet. Create one with "
            "`harness ratings campaign NAME --mode rubric|pairwise --runs RUN ...`, then invite raters "
            "with `harness ratings invite NAME RATER`."
        )
        return None
    return db


def pick_campaign(db: RatingsDB, modes: tuple[Mode, ...], *, key: str) -> Campaign | None:
    try:
        campaigns = [c for c in db.campaigns() if c.mode in modes]
    except RatingsError as error:
        st.error(plain(error))
        return None
    if not campaigns:
        st.info(f"No {' or '.join(modes)} campaign yet; create one with `harness ratings campaign`.")
        return None
    return _choose(campaigns, key=key)


def _choose(campaigns: list[Campaign], *, key: str) -> Campaign:
    by_id = {c.campaign_id: c for c in campaigns}
    chosen = st.selectbox(
        "Campaign",
        list(by_id)[::-1],  # newest first
        key=key,
        format_func=lambda campaign_id: f"{campaign_id} ({by_id[campaign_id].mode})",
    )
    campaign = by_id[str(chosen)]
    if campaign.description:
        st.caption(plain(campaign.description))
    return campaign


def _signed_in(db: RatingsDB) -> dict[str, Identity]:
    """This session's rater identities that are still valid (a newer invitation voids a token)."""
    identities: dict[str, Identity] = st.session_state.setdefault(IDENTITIES_KEY, {})
    token = query_token()
    if token is not None:
        _add_identity(db, token, identities)
    for campaign_id, identity in list(identities.items()):
        try:
            db.current(identity)
        except RatingsError as error:
            identities.pop(campaign_id)
            st.error(plain(error))
    return identities


def _add_identity(db: RatingsDB, token: str, identities: dict[str, Identity]) -> bool:
    try:
        identity = db.identify(token, "rater")
    except RatingsError as error:
        st.error(plain(error))
        return False
    assert identity.campaign_id is not None  # rater tokens always name their campaign
    identities[identity.campaign_id] = identity
    return True


def _token_form(db: RatingsDB, identities: dict[str, Identity]) -> None:
    with st.form("human_sign_in"):
        st.markdown("**Sign in to rate**")
        given = st.text_input(
            "Your sign-in token",
            type="password",
            key="human_token",
            help="From your invitation (`harness ratings invite`); opening its link signs you in too",
        )
        if not st.form_submit_button("Start rating", type="primary"):
            return
    if _add_identity(db, str(given), identities):
        st.rerun()  # start over signed in, so the form does not linger above the first item


def _sign_out(campaign_id: str) -> None:
    st.session_state.get(IDENTITIES_KEY, {}).pop(campaign_id, None)


def rater_session(db: RatingsDB, mode: Mode, *, key: str) -> tuple[Campaign, str] | None:
    """The campaign of this page's mode and the signed-in rater; None while signing in (the form
    or the reason is shown)."""
    if _login_configured():
        return _login_session(db, mode, key=key)
    try:
        if not any(campaign.mode == mode for campaign in db.campaigns()):  # also checks the file
            st.info(f"No {mode} campaign yet; create one with `harness ratings campaign`.")
            return None
        identities = _signed_in(db)
        campaigns = [db.campaign(campaign_id) for campaign_id in identities]
    except RatingsError as error:
        st.error(plain(error))
        return None
    mine = [campaign for campaign in campaigns if campaign.mode == mode]
    if not mine:
        for other in campaigns:
            page = "Rate outputs" if other.mode == "rubric" else "Compare answers"
            st.info(
                f"Your invitation is for the {other.mode} campaign {plain(other.campaign_id)}: "
                f"open **{page}** in the menu to rate it."
            )
        _token_form(db, identities)
        return None
    campaign = mine[0] if len(mine) == 1 else _choose(mine, key=key)
    if len(mine) == 1 and campaign.description:
        st.caption(plain(campaign.description))
    rater = identities[campaign.campaign_id].name
    st.sidebar.caption(f"Rating as {plain(rater)}")
    st.sidebar.button("Sign out", on_click=_sign_out, args=(campaign.campaign_id,), key="human_sign_out")
    return campaign, rater


def _login_session(db: RatingsDB, mode: Mode, *, key: str) -> tuple[Campaign, str] | None:
    """OpenID Connect: the identity provider says who the rater is (their e-mail)."""
    campaign = pick_campaign(db, (mode,), key=key)
    if campaign is None:
        return None
    if not st.user.is_logged_in:
        st.info("Log in to rate.")
        st.button("Log in", on_click=st.login, key="human_login")
        return None
    email = str(st.user.get("email") or st.user.get("name") or "")
    registered: set[tuple[str, str]] = st.session_state.setdefault(_OIDC_RATER_KEY, set())
    try:
        rater = normalise_rater(email)
        if (campaign.campaign_id, rater) not in registered:
            db.register_rater(campaign.campaign_id, rater)  # checks the campaign's rater list
            registered.add((campaign.campaign_id, rater))
    except RatingsError as error:
        st.error(plain(error))
        return None
    st.sidebar.caption(f"Rating as {plain(rater)}")
    st.sidebar.button("Log out", on_click=st.logout, key="human_logout")
    return campaign, rater


def skip_item(db: RatingsDB, campaign: Campaign, rater: str, item_id: str, noun: str) -> None:
    """A form's Skip button: the rater never sees this item again."""
    try:
        db.skip(campaign.campaign_id, rater, item_id)
    except RatingsError as error:
        flash("error", plain(error))
        return
    flash("success", f"Skipped; you will not see that {noun} again.")


def submit_answers(
    db: RatingsDB,
    campaign: Campaign,
    rater: str,
    served: ServedItem,
    prefix: str,
    answers: Mapping[str, object],
) -> SubmitResult | None:
    """A rating form's submit callback: record the answers with the form's comment and export the
    campaign; None after flashing why nothing was written (the form keeps its answers for another try)."""
    try:
        result = db.submit(
            campaign.campaign_id,
            rater,
            served.item.item_id,
            answers,
            display_order=served.display_order,
            comment=str(st.session_state.get(f"{prefix}:comment") or ""),
        )
    except RatingsError as error:
        flash("error", plain(error))
        return None
    export_quietly(db, campaign.campaign_id)
    return result


def form_buttons(
    db: RatingsDB,
    campaign: Campaign,
    rater: str,
    served: ServedItem,
    prefix: str,
    *,
    submit_label: str,
    on_submit: Callable[[RatingsDB, Campaign, str, ServedItem, str], None],
    noun: str,
) -> None:
    """The end of a rating form: an optional comment, the submit button and a skip button.

    Both act in their callbacks, bound to the item the form showed, so a rerun (or another tab) can
    change what the page shows next, never what was answered."""
    st.text_area("Comment (optional)", key=f"{prefix}:comment", max_chars=5000)
    submit_column, skip_column = st.columns([1, 5])
    submit_column.form_submit_button(
        submit_label, type="primary", on_click=on_submit, args=(db, campaign, rater, served, prefix)
    )
    skip_column.form_submit_button(
        f"Skip this {noun}", on_click=skip_item, args=(db, campaign, rater, served.item.item_id, noun)
    )


def flash(kind: str, text: str) -> None:
    """A message to show after the rerun that follows a submission (Markdown: user text via `plain`)."""
    st.session_state[_FLASH_KEY] = (kind, text)


def show_flash() -> None:
    kind, text = st.session_state.pop(_FLASH_KEY, (None, None))
    if kind == "success":
        st.success(text)
    elif kind == "warning":
        st.warning(text)
    elif kind == "error":
        st.error(text)


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
        st.warning(f"Your rating is saved, but the ratings table could not be refreshed: {plain(error)}")


@st.cache_data(show_spinner=False, max_entries=8)
def _runs(key: str, root: str) -> pd.DataFrame:
    del key  # the store listing's digest: a new run changes it
    data = load_store(list_store(root))
    return data.runs if data.error is None else pd.DataFrame()


def run_names(run_ids: tuple[str, ...]) -> dict[str, str]:
    """A readable name per run (model · experiment@step · id), for revealing a pair after the vote."""
    root = store_root()
    runs = _runs(list_store(root).key, root)
    known = set(runs["run_id"]) if not runs.empty else set()
    return {run_id: run_label(runs, run_id) if run_id in known else run_id for run_id in run_ids}


# -- human columns on the leaderboard --------------------------------------------------------------


def human_by_run(ratings: pd.DataFrame, *, resamples: int = 200, seed: int = 0) -> pd.DataFrame:
    """run_id, column, value, ci_low, ci_high: per rubric campaign and criterion the mean human score
    (1-5), per pairwise campaign the Bradley–Terry rating (Elo scale), without raters who failed gold
    checks, as on the results page."""
    columns = ["run_id", "column", "value", "ci_low", "ci_high"]
    rows: list[tuple[object, ...]] = []
    for campaign_id, group in ratings.groupby("campaign_id", sort=True):
        raters = rater_quality(group)
        kept = group[~group["is_gold"] & ~group["rater"].isin(raters.loc[raters["flagged"], "rater"])]
        if kept.empty:
            continue
        if kept["mode"].iloc[0] == "rubric":
            for score in human_scores(kept).itertuples():
                name = f"{HUMAN_PREFIX}{campaign_id}/{score.question}"
                rows.append((score.run_id, name, score.mean, score.ci_low, score.ci_high))
            continue
        try:
            board = bradley_terry(comparisons(kept), resamples=resamples, seed=seed).to_frame()
        except ValueError:
            continue  # runs that cannot be ranked (never compared) get no column rather than a wrong one
        for rating in board.itertuples():
            name = f"{HUMAN_PREFIX}{campaign_id}/rating"
            rows.append((rating.run_id, name, rating.rating, rating.rating_low, rating.rating_high))
    return pd.DataFrame(rows, columns=columns)


def with_human_columns(shown: pd.DataFrame, human: pd.DataFrame, *, show_intervals: bool) -> pd.DataFrame:
    """The leaderboard as shown, plus one column per human measure (and its interval), by run_id.

    In models mode a row's run_id is the model's newest run, so it shows that run's human scores.
    """
    if human.empty or "run_id" not in shown.columns:
        return shown
    trailing = [column for column in ("created_at", "run_id") if column in shown.columns]
    result = shown.drop(columns=trailing)
    for name, group in human.groupby("column", sort=True):
        by_run = group.set_index("run_id")
        result[str(name)] = shown["run_id"].map(by_run["value"]).astype(float)
        if show_intervals:
            pairs = zip(
                shown["run_id"].map(by_run["ci_low"]), shown["run_id"].map(by_run["ci_high"]), strict=True
            )
            result[f"{name} 95% CI"] = [
                "" if pd.isna(low) or pd.isna(high) else f"[{low:.2f}, {high:.2f}]" for low, high in pairs
            ]
    return pd.concat([result, shown[trailing]], axis=1)


def human_column_config(columns: Any) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for column in (str(c) for c in columns):
        if not column.startswith(HUMAN_PREFIX) or column.endswith("CI"):
            continue
        if column.endswith("/rating"):
            help_text = "Bradley–Terry rating from blind pairwise votes (Elo scale, 1000 = average)"
            config[column] = st.column_config.NumberColumn(column, format="%.0f", help=help_text)
        else:
            help_text = "Mean human score, 1-5 (items averaged over their raters)"
            config[column] = st.column_config.NumberColumn(column, format="%.2f", help=help_text)
    return config


@st.cache_data(show_spinner=False, max_entries=8)
def _human_by_run(root: str, stamp: tuple[tuple[str, int, int], ...]) -> pd.DataFrame:
    del stamp  # the ratings parts' names, sizes and modification times: a new export changes it
    return human_by_run(read_ratings(root))


def cached_human_by_run(root: str) -> pd.DataFrame:
    """`human_by_run` over the store's exported ratings, recomputed only when an export changes."""
    stamp = tuple((name, size, mtime) for _, name, size, mtime in sorted(part_entries(root, "ratings")))
    if not stamp:
        return pd.DataFrame(columns=["run_id", "column", "value", "ci_low", "ci_high"])
    try:
        return _human_by_run(root, stamp)
    except HarnessError as error:
        st.warning(f"Human ratings are not shown: {plain(error)}")
        return pd.DataFrame(columns=["run_id", "column", "value", "ci_low", "ci_high"])
