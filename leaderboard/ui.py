"""Streamlit glue the pages share: which store, viewer sign-in, cached reads, run pickers, plain text.

Reads are cached with `st.cache_data` keyed by the store's listing (part file names, sizes and
modification times), which is recomputed on every rerun: a new run changes the key and appears on
the next interaction or reload, and unchanged data is never read twice. What is shaped from the data (the
leaderboard, its display table, the metric choices) is cached under the same digest, so a rerun over an
unchanged store (any click) reshapes nothing.

The store is fixed at launch (`--store` after `streamlit run app.py --`, else $HARNESS_STORE): no
widget sets it, so a visitor cannot point the server at another folder. With `--private` (or
HARNESS_LEADERBOARD_PRIVATE=1) every page that reads results through `store_data` first asks for a
viewer token. Everything a user or a model wrote (model, experiment, task and group names, sample
text, error messages quoting them) reaches Markdown only through `plain`, so it shows as typed and
never as a link, an image or HTML.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.leaderboard.ranking import (
    Leaderboard,
    LeaderboardFilters,
    build_leaderboard,
    comparable_rows,
    display_table,
    metric_choices,
)
from harness.leaderboard.task_groups import TaskGroups, task_groups
from harness.store import (
    StoreData,
    StoreListing,
    default_store_path,
    list_store,
    load_samples,
    load_store,
    sample_counts,
)

if TYPE_CHECKING:
    from harness.leaderboard.diff import TaskDifferences
    from harness.ratings import RatingsDB

# `harness.ratings` (SciPy underneath) and `harness.leaderboard.diff` are imported where they are
# used: a public leaderboard page needs neither, and a cold server start pays for every import.

__all__ = [
    "PRIVATE_ENV",
    "STORE_KEY",
    "cached_counts",
    "cached_differences",
    "cached_display_table",
    "cached_leaderboard",
    "cached_metric_choices",
    "cached_samples",
    "cached_task_groups",
    "configured_private",
    "configured_store",
    "pick_run",
    "plain",
    "query_token",
    "results_store_data",
    "run_label",
    "store_data",
    "store_sidebar",
    "viewer_signed_in",
]

STORE_KEY = "store_path"  # set at launch (or by a test), never by a widget
PRIVATE_ENV = "HARNESS_LEADERBOARD_PRIVATE"
VIEWER_KEY = "viewer_identity"
# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all turns
# links, images, emphasis, HTML, tables, math and Streamlit's :directives[] into literal text.
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
# Samples are the large table: a few runs' worth is plenty to flip between pages quickly.
_SAMPLE_CACHE_ENTRIES = 16


def plain(text: object) -> str:
    """`text` for any Markdown-rendering element (st.markdown, captions, messages, widget labels),
    shown exactly as written: every Markdown and HTML character escaped, lines kept."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def _launch_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    # No abbreviations: a foreign argv (pytest's, say) must never be read as --store.
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--store", default=None)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--ratings-db", default=None)
    known, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return known


def configured_store(argv: Sequence[str] | None = None) -> str:
    """`--store DIR` after `streamlit run app.py --`, else $HARNESS_STORE, else ./harness_store."""
    known = _launch_arguments(argv)
    return str(known.store) if known.store else str(default_store_path())


def configured_private(argv: Sequence[str] | None = None) -> bool:
    """`--private` after `streamlit run app.py --`, or HARNESS_LEADERBOARD_PRIVATE=1: viewers sign in."""
    if _launch_arguments(argv).private:
        return True
    return os.environ.get(PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes")


def ratings_database() -> RatingsDB:
    """The ratings database the rating pages use: `--ratings-db FILE` given at launch (the one
    `harness ratings ... --db FILE` wrote), else the store's own (`RatingsDB.for_store`)."""
    from harness.ratings import RatingsDB

    chosen = _launch_arguments(None).ratings_db
    return RatingsDB(Path(chosen)) if chosen else RatingsDB.for_store(store_root())


def store_root() -> str:
    if STORE_KEY not in st.session_state:
        st.session_state[STORE_KEY] = configured_store()
    return str(st.session_state[STORE_KEY])


def store_sidebar() -> None:
    """Which store this app serves (its folder name; it was chosen at launch) and a refresh button."""
    st.sidebar.caption(f"Results store: {plain(os.path.basename(os.path.normpath(store_root())))}")
    if st.sidebar.button("Refresh", help="Look for new runs now (any interaction does too)"):
        st.rerun()
    viewer = st.session_state.get(VIEWER_KEY)
    if viewer is None:
        return
    from harness.ratings.access import Identity

    if isinstance(viewer, Identity):
        st.sidebar.caption(f"Viewing as {plain(viewer.name)}")
        st.sidebar.button(
            "Sign out", key="viewer_sign_out", on_click=st.session_state.pop, args=(VIEWER_KEY,)
        )


def query_token() -> str | None:
    """The `?token=` of an invitation link, removed from the address bar once read."""
    from harness.ratings.access import TOKEN_PARAMETER

    token = st.query_params.get(TOKEN_PARAMETER)
    if token is None:
        return None
    del st.query_params[TOKEN_PARAMETER]
    return str(token)


def viewer_signed_in() -> bool:
    """True when this app is open to every visitor, or this session signed in with a viewer token;
    otherwise the sign-in form is shown and the page should stop."""
    if not configured_private():
        return True
    from harness.ratings import RatingsError
    from harness.ratings.access import Identity

    db = ratings_database()
    identity = st.session_state.get(VIEWER_KEY)
    try:
        if isinstance(identity, Identity):
            db.current(identity)  # a token replaced meanwhile signs this session out
            return True
        token = query_token()
        if token is not None:
            st.session_state[VIEWER_KEY] = db.identify(token, "viewer")
            st.rerun()  # draw the page signed in, with the sidebar saying so
    except RatingsError as error:
        st.session_state.pop(VIEWER_KEY, None)
        st.error(plain(error))
    st.info("The results on this server are private: sign in with the viewer token you were given.")
    with st.form("viewer_sign_in"):
        given = st.text_input("Viewer token", type="password", key="viewer_token")
        if not st.form_submit_button("Sign in", type="primary"):
            return False
    try:
        st.session_state[VIEWER_KEY] = db.identify(str(given), "viewer")
    except RatingsError as error:
        st.error(plain(error))
        return False
    st.rerun()
    return False  # not reached: st.rerun raises


def current_listing() -> StoreListing:
    return list_store(store_root())


@st.cache_data(show_spinner="Reading the results store…", max_entries=4)
def _cached_store(key: str, _listing: StoreListing) -> StoreData:
    del key  # the listing's digest is the cache key; the underscore keeps the listing out of the hash
    return load_store(_listing)


def results_store_data(*, details: bool = True) -> StoreData | None:
    """The store's runs and scores, or None after saying plainly why there are none to show.

    No viewer check: the rating pages use it for the store's state, and show no results. With
    `details` False (a rating page, seen by raters who have not signed in yet) nothing of the store's
    internals is shown: neither its path nor the run ids its problems name."""
    listing = current_listing()
    data = _cached_store(listing.key, listing)
    if data.error is not None or data.empty:
        if not details:
            st.warning(_without_internals(data.error))
        elif data.error is not None:
            st.warning(plain(data.error))
        else:
            st.info(f"The store at {plain(data.root)} has no completed runs yet.")
        return None
    if data.problems and details:
        with st.expander(f"{len(data.problems)} problem(s) in this store", expanded=False):
            for problem in data.problems:
                st.warning(plain(problem))
    return data


def _without_internals(error: str | None) -> str:
    """Why a rating page has nothing to show, in words that name no path (raters see it before signing in)."""
    if error is None:
        return "The results store is empty: no completed runs to rate yet."
    if "newer" in error:
        return "The results store was written by a newer harness; ask whoever runs this app to upgrade."
    return "There is no results store to rate from yet; ask whoever runs this app."


def store_data() -> StoreData | None:
    """The store's runs and scores for a results page, once the viewer may see them (see
    `viewer_signed_in`); None after saying why not."""
    if not viewer_signed_in():
        return None
    return results_store_data()


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_task_groups(key: str, _runs: pd.DataFrame) -> TaskGroups:
    del key  # the listing's digest identifies `_runs`
    return task_groups(_runs)


def cached_task_groups(data: StoreData) -> TaskGroups:
    """The task groups the store's runs recorded (none for stores written before groups)."""
    return _cached_task_groups(data.key, data.runs)


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_leaderboard(
    key: str,
    metric: str | None,
    rows: str,
    filters: LeaderboardFilters,
    rank_by: str | None,
    _scores: pd.DataFrame,
    _groups: TaskGroups,
) -> Leaderboard:
    del key  # identifies `_scores` and `_groups`, which are too large to hash on every rerun
    return build_leaderboard(
        _scores, metric=metric, rows=rows, filters=filters, rank_by=rank_by, groups=_groups
    )


def cached_leaderboard(
    data: StoreData,
    *,
    metric: str | None,
    rows: str,
    filters: LeaderboardFilters,
    rank_by: str | None = None,
) -> Leaderboard:
    """`build_leaderboard` over the store's scores and groups, computed once per store state and options."""
    return _cached_leaderboard(
        data.key, metric, rows, filters, rank_by, data.scores, cached_task_groups(data)
    )


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_metric_choices(key: str, _scores: pd.DataFrame, _groups: TaskGroups) -> list[str]:
    del key  # identifies `_scores` and `_groups`
    return metric_choices(_scores, _groups)


def cached_metric_choices(data: StoreData) -> list[str]:
    """`metric_choices` over the store's scores and groups, once per store state."""
    return _cached_metric_choices(data.key, data.scores, cached_task_groups(data))


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_display(
    key: str,
    metric: str | None,
    rows: str,
    filters: LeaderboardFilters,
    rank_by: str | None,
    include_partial: bool,
    show_intervals: bool,
    _board: Leaderboard,
) -> pd.DataFrame:
    del key, metric, rows, filters, rank_by  # with the store's digest they identify `_board`
    return display_table(
        comparable_rows(_board, include_partial=include_partial), show_intervals=show_intervals
    )


def cached_display_table(
    data: StoreData,
    board: Leaderboard,
    *,
    metric: str | None,
    rows: str,
    filters: LeaderboardFilters,
    include_partial: bool,
    show_intervals: bool,
) -> pd.DataFrame:
    """`display_table` of `comparable_rows(board)`, where `board` is what `cached_leaderboard` gave for
    the same store and options: formatting every interval of a large store is done once, not per rerun."""
    return _cached_display(
        data.key, metric, rows, filters, board.rank_by, include_partial, show_intervals, board
    )


@st.cache_data(show_spinner="Reading samples…", max_entries=_SAMPLE_CACHE_ENTRIES)
def _cached_samples(root: str, run_id: str, task: str | None, stamp: tuple[object, ...]) -> pd.DataFrame:
    del stamp  # only part of the cache key: a rewritten part file must be read again
    return load_samples(root, run_id, task)


def cached_samples(data: StoreData, run_id: str, task: str | None = None) -> pd.DataFrame | None:
    """A run's samples, or None after a warning when they cannot be read."""
    try:
        return _cached_samples(data.root, run_id, task, current_listing().run_stamp(run_id))
    except HarnessError as error:
        st.warning(plain(error))
        return None


@st.cache_data(show_spinner=False, max_entries=_SAMPLE_CACHE_ENTRIES)
def _cached_counts(root: str, run_id: str, stamp: tuple[object, ...]) -> pd.DataFrame:
    del stamp
    return sample_counts(root, run_id)


def cached_counts(data: StoreData, run_id: str) -> pd.DataFrame | None:
    try:
        return _cached_counts(data.root, run_id, current_listing().run_stamp(run_id))
    except HarnessError as error:
        st.warning(plain(error))
        return None


@st.cache_data(show_spinner="Comparing the runs…", max_entries=16)
def _cached_differences(
    root: str, baseline: str, candidate: str, stamp: tuple[object, ...], _scores: pd.DataFrame
) -> TaskDifferences:
    del stamp  # the leading underscore keeps the large scores frame out of the hashed key
    from harness.leaderboard.diff import task_differences

    return task_differences(root, _scores, baseline, candidate)


def cached_differences(data: StoreData, baseline: str, candidate: str) -> TaskDifferences:
    listing = current_listing()
    stamp = (listing.run_stamp(baseline), listing.run_stamp(candidate))
    scores = data.scores[data.scores["run_id"].isin((baseline, candidate))]
    return _cached_differences(data.root, baseline, candidate, stamp, scores)


def run_label(runs: pd.DataFrame, run_id: str) -> str:
    row = runs.loc[runs["run_id"] == run_id].iloc[0]
    experiment = row["experiment"] if isinstance(row["experiment"], str) else "-"
    step = "" if pd.isna(row["step"]) else f"@{int(row['step'])}"
    return f"{row['model']} · {experiment}{step} · {run_id}"


def pick_run(data: StoreData, label: str, *, key: str, default: int = 0) -> str | None:
    """A selectbox of runs, newest first; `default` indexes that order."""
    run_ids = data.runs["run_id"].tolist()[::-1]
    if not run_ids:
        return None
    choice = st.selectbox(
        label,
        run_ids,
        index=min(default, len(run_ids) - 1),
        format_func=lambda run_id: run_label(data.runs, run_id),
        key=key,
    )
    return None if choice is None else str(choice)
