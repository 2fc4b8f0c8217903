"""Choosing a run by what people call it: `latest:main`, `sft-v2@2000`, `tag:baseline`, an id prefix.

Shared by `harness compare`, `harness gate` and rating campaigns. Run ids never contain ':' or '@'.
"""

from __future__ import annotations

import pandas as pd

from harness.errors import HarnessError
from harness.store.layout import RUN_ID_RE, RUNS_SCHEMA, part_path
from harness.store.reader import read_table
from harness.store.result_store import ResultStore

__all__ = ["SELECTOR_HELP", "resolve_run"]

SELECTOR_HELP = (
    "a run id (or a unique prefix), latest, latest:EXPERIMENT, EXPERIMENT@STEP, tag:NAME, "
    "best:EXPERIMENT:TASK/METRIC"
)


def _newest(runs: pd.DataFrame, selector: str, store: ResultStore) -> str:
    if runs.empty:
        raise HarnessError(f"no run in {store.root} matches '{selector}'")
    # runs() is sorted oldest first by (created_at, run_id).
    return str(runs["run_id"].iloc[-1])


def _tagged(store: ResultStore, tag: str) -> set[str]:
    """Runs tagged `tag` (`harness run --tag`), and, as before tags existed, runs of experiment `tag`."""
    return {run.run_id for run in store.run_records() if tag in run.tags or run.experiment == tag}


def _best(store: ResultStore, runs: pd.DataFrame, selector: str, spec: str) -> str:
    experiment, _, target = spec.rpartition(":")
    task, _, metric = target.partition("/")
    if not experiment or not task or not metric:
        raise HarnessError(f"selector '{selector}' must look like best:EXPERIMENT:TASK/METRIC")
    ids = set(runs.loc[runs["experiment"] == experiment, "run_id"])
    scores = store.scores()
    scores = scores[scores["run_id"].isin(ids) & (scores["task"] == task) & (scores["metric"] == metric)]
    if scores.empty:
        raise HarnessError(f"no run of experiment '{experiment}' has a score for {task}/{metric}")
    higher = bool(scores["higher_is_better"].iloc[0])
    # Stable sort on the value, oldest first, so ties go to the newest run.
    ordered = scores.sort_values("value", ascending=higher, kind="stable")
    return str(ordered["run_id"].iloc[-1])


def resolve_run(store: ResultStore, selector: str) -> str:
    """The run id a selector names; see SELECTOR_HELP."""
    runs = store.runs()
    if selector in set(runs["run_id"]):
        return selector
    if selector == "latest":
        return _newest(runs, selector, store)
    kind, colon, rest = selector.partition(":")
    if colon and kind == "latest":
        return _newest(runs[runs["experiment"] == rest], selector, store)
    if colon and kind == "tag":
        return _newest(runs[runs["run_id"].isin(_tagged(store, rest))], selector, store)
    if colon and kind == "best":
        return _best(store, runs, selector, rest)
    if colon:
        raise HarnessError(f"unknown run selector '{selector}'; use {SELECTOR_HELP}")
    experiment, at, step = selector.rpartition("@")
    if at:
        if not step.isdigit():
            raise HarnessError(f"selector '{selector}' must end in @STEP with a whole number")
        chosen = runs[(runs["experiment"] == experiment) & (runs["step"] == int(step))]
        return _newest(chosen, selector, store)
    prefixed = [run_id for run_id in runs["run_id"] if str(run_id).startswith(selector)]
    if len(prefixed) == 1:
        return str(prefixed[0])
    if len(prefixed) > 1:
        raise HarnessError(f"run id prefix '{selector}' matches {len(prefixed)} runs; give more of it")
    if RUN_ID_RE.match(selector) and part_path(store.root, "runs", selector).is_file():
        # Its runs part is there but was skipped as damaged: say that, not "unknown run".
        read_table(store.root, "runs", RUNS_SCHEMA, [selector], strict=True)
    raise HarnessError(f"unknown run '{selector}' in {store.root} (select with {SELECTOR_HELP})")
