"""Streamlit glue the pages share: which store, cached reads, run pickers and plain messages.

Reads are cached with `st.cache_data` keyed by the store's listing (part file names, sizes and
modification times), which is recomputed on every rerun: a new run changes the key and appears on
the next interaction or reload, and unchanged data is never read twice.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.leaderboard.diff import TaskDifferences, task_differences
from harness.leaderboard.ranking import Leaderboard, LeaderboardFilters, build_leaderboard
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

__all__ = [
    "STORE_KEY",
    "cached_counts",
    "cached_differences",
    "cached_leaderboard",
    "cached_samples",
    "cached_task_groups",
    "configured_store",
    "pick_run",
    "run_label",
    "store_data",
    "store_sidebar",
]

STORE_KEY = "store_path"
# Samples are the large table: a few runs' worth is plenty to flip between pages quickly.
_SAMPLE_CACHE_ENTRIES = 16


def configured_store(argv: Sequence[str] | None = None) -> str:
    """`--store DIR` after `streamlit run app.py --`, else $HARNESS_STORE, else ./harness_store."""
    # No abbreviations: a foreign argv (pytest's, say) must never be read as --store.
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--store", default=None)
    known, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return str(known.store) if known.store else str(default_store_path())


def store_sidebar() -> None:
    """The store path (editable, so another store can be opened without a restart) and a refresh."""
    if STORE_KEY not in st.session_state:
        st.session_state[STORE_KEY] = configured_store()
    st.sidebar.text_input("Results store", key=STORE_KEY, help="Folder of the Parquet results store")
    if st.sidebar.button("Refresh", help="Look for new runs now (any interaction does too)"):
        st.rerun()


def current_listing() -> StoreListing:
    return list_store(str(st.session_state.get(STORE_KEY) or configured_store()))


@st.cache_data(show_spinner="Reading the results store…", max_entries=4)
def _cached_store(key: str, _listing: StoreListing) -> StoreData:
    del key  # the listing's digest is the cache key; the underscore keeps the listing out of the hash
    return load_store(_listing)


def store_data() -> StoreData | None:
    """The store's runs and scores, or None after saying plainly why there are none to show."""
    listing = current_listing()
    data = _cached_store(listing.key, listing)
    if data.error is not None:
        st.warning(data.error)
        return None
    if data.empty:
        st.info(f"The store at {data.root} has no completed runs yet.")
        return None
    if data.problems:
        with st.expander(f"{len(data.problems)} problem(s) in this store", expanded=False):
            for problem in data.problems:
                st.warning(problem)
    return data


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


@st.cache_data(show_spinner="Reading samples…", max_entries=_SAMPLE_CACHE_ENTRIES)
def _cached_samples(root: str, run_id: str, task: str | None, stamp: tuple[object, ...]) -> pd.DataFrame:
    del stamp  # only part of the cache key: a rewritten part file must be read again
    return load_samples(root, run_id, task)


def cached_samples(data: StoreData, run_id: str, task: str | None = None) -> pd.DataFrame | None:
    """A run's samples, or None after a warning when they cannot be read."""
    try:
        return _cached_samples(data.root, run_id, task, current_listing().run_stamp(run_id))
    except HarnessError as error:
        st.warning(str(error))
        return None


@st.cache_data(show_spinner=False, max_entries=_SAMPLE_CACHE_ENTRIES)
def _cached_counts(root: str, run_id: str, stamp: tuple[object, ...]) -> pd.DataFrame:
    del stamp
    return sample_counts(root, run_id)


def cached_counts(data: StoreData, run_id: str) -> pd.DataFrame | None:
    try:
        return _cached_counts(data.root, run_id, current_listing().run_stamp(run_id))
    except HarnessError as error:
        st.warning(str(error))
        return None


@st.cache_data(show_spinner="Comparing the runs…", max_entries=16)
def _cached_differences(
    root: str, baseline: str, candidate: str, stamp: tuple[object, ...], _scores: pd.DataFrame
) -> TaskDifferences:
    del stamp  # the leading underscore keeps the large scores frame out of the hashed key
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
