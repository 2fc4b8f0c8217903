"""Building a campaign from runs in the results store: its items, plus gold items from a YAML file.

Items come from the `samples` table, and only samples with generated text (`prediction`) can be
rated: a multiple-choice or perplexity task stores log-probabilities, nothing a person can read as
an answer. Rubric items are one run's output for a document; pairwise items are two runs' outputs
for the same (task, doc_id). A document sample (`limit`) is drawn once and shared by every run and
pair, so all runs are rated on the same prompts.

Gold items (known answers, mixed into every rater's queue) are written by hand::

    - prompt: What is the capital of France?
      output: The capital of France is Berlin.        # rubric mode
      expect: {correctness: [1, 2]}                   # accepted scores per criterion
    - prompt: What is 2 + 2?
      output_a: "4"                                   # pairwise mode
      output_b: I like turtles.
      expect: a                                       # a, b, tie, both_bad, or a list of them
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from harness.files import load_yaml_file
from harness.ratings.db import normalise_rater
from harness.ratings.errors import RatingsError
from harness.ratings.records import CAMPAIGN_ID_RE, MODES, Campaign, Item, Mode
from harness.ratings.rubric import PAIRWISE_QUESTION, SCALE_POINTS, Rubric
from harness.store import ResultStore, resolve_run

__all__ = ["CampaignPlan", "load_gold", "plan_campaign"]

_PAIRWISE_ANSWERS = ("a", "b", "tie", "both_bad")
_GOLD_KEYS = {"prompt", "output", "output_a", "output_b", "target", "expect"}


@dataclass(frozen=True)
class CampaignPlan:
    campaign: Campaign
    items: tuple[Item, ...]
    notes: tuple[str, ...] = ()  # what was left out and why, for the person creating it

    @property
    def gold_items(self) -> int:
        return sum(1 for item in self.items if item.is_gold)


@dataclass(frozen=True)
class _Output:
    prompt: str
    target: str
    prediction: str


# One run's rateable samples, by (task, doc_id).
_Outputs = dict[tuple[str, int], _Output]


def _rated_samples(store: ResultStore, run_id: str, tasks: Sequence[str]) -> _Outputs:
    samples = store.samples(run_id)
    if tasks:
        samples = samples[samples["task"].isin(tasks)]
    samples = samples[samples["prediction"].notna()]
    if samples.empty:
        scope = f" for tasks {', '.join(tasks)}" if tasks else ""
        raise RatingsError(
            f"run {run_id} has no generated outputs to rate{scope}: only generate_until tasks store "
            "text predictions"
        )
    return {
        (str(task), int(doc_id)): _Output(str(prompt), str(target), str(prediction))
        for task, doc_id, prompt, target, prediction in zip(
            samples["task"],
            samples["doc_id"],
            samples["prompt"],
            samples["target"],
            samples["prediction"],
            strict=True,
        )
    }


def _sample_keys(keys: set[tuple[str, int]], limit: int | None, seed: int) -> list[tuple[str, int]]:
    ordered = sorted(keys)
    if limit is None or limit >= len(ordered):
        return ordered
    chosen = np.random.default_rng(seed).choice(len(ordered), size=limit, replace=False)
    return [ordered[index] for index in sorted(chosen)]


def _rubric_items(samples: Mapping[str, _Outputs], keys: list[tuple[str, int]]) -> list[Item]:
    items: list[Item] = []
    for (task, doc_id), (run_id, outputs) in itertools.product(keys, samples.items()):
        output = outputs.get((task, doc_id))
        if output is None:
            continue
        items.append(
            Item(
                item_id=f"{task}/{doc_id}/{run_id}",
                prompt=output.prompt,
                outputs=(output.prediction,),
                runs=(run_id,),
                task=task,
                doc_id=doc_id,
                target=output.target,
            )
        )
    return items


def _connected(runs: Sequence[str], pairs: set[tuple[str, str]]) -> list[list[str]]:
    """Groups of runs linked by compared pairs (union-find); one group means all are comparable."""
    parent = {run: run for run in runs}

    def root(run: str) -> str:
        while parent[run] != run:
            parent[run] = parent[parent[run]]
            run = parent[run]
        return run

    for first, second in pairs:
        parent[root(first)] = root(second)
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(root(run), []).append(run)
    return list(groups.values())


def _pairwise_items(
    samples: Mapping[str, _Outputs], limit: int | None, seed: int
) -> tuple[list[Item], list[str]]:
    runs = list(samples)
    pairs = list(itertools.combinations(runs, 2))
    shared = {pair: set(samples[pair[0]]) & set(samples[pair[1]]) for pair in pairs}
    if not any(shared.values()):
        raise RatingsError(
            f"runs {', '.join(runs)} share no prompts: no (task, doc_id) has a generated output in two "
            "of them; choose runs evaluated on the same tasks"
        )
    keys = set(_sample_keys(set().union(*shared.values()), limit, seed))
    items: list[Item] = []
    identical = 0
    compared: set[tuple[str, str]] = set()
    for (first, second), common in shared.items():
        for task, doc_id in sorted(common & keys):
            row_a, row_b = samples[first][(task, doc_id)], samples[second][(task, doc_id)]
            if row_a.prediction == row_b.prediction:
                identical += 1  # the same text twice is a tie by construction: no rater time on it
                continue
            compared.add((first, second))
            items.append(
                Item(
                    item_id=f"{task}/{doc_id}/{first}~{second}",
                    prompt=row_a.prompt,
                    outputs=(row_a.prediction, row_b.prediction),
                    runs=(first, second),
                    task=task,
                    doc_id=doc_id,
                    target=row_a.target,
                )
            )
    groups = _connected(runs, compared)
    if len(groups) > 1:
        listed = "; ".join(", ".join(group) for group in groups)
        raise RatingsError(
            f"these groups of runs share no prompts with differing outputs, so they cannot be ranked "
            f"against each other: {listed}"
        )
    notes = [f"left out {identical} pair(s) whose two outputs are identical"] if identical else []
    notes += [
        f"runs {first} and {second} share no prompts; they are compared only through other runs"
        for (first, second), common in shared.items()
        if not common
    ]
    return items, notes


def _accepted(value: Any, where: str, allowed: Sequence[str]) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    answers = tuple(str(v).strip().lower() for v in values)
    bad = [answer for answer in answers if answer not in allowed]
    if not answers or bad:
        raise RatingsError(f"{where} expects {bad[0] if bad else 'nothing'!r}; use {', '.join(allowed)}")
    return answers


def _gold_item(entry: Any, index: int, mode: Mode, rubric: Rubric | None, source: str) -> Item:
    where = f"gold item {index} in {source}"
    if not isinstance(entry, Mapping):
        raise RatingsError(f"{where} must be a mapping with prompt, output(s) and expect")
    extra = sorted(str(key) for key in entry if key not in _GOLD_KEYS)
    if extra:
        raise RatingsError(f"unknown key '{extra[0]}' in {where}")
    needed = ("prompt", "output") if mode == "rubric" else ("prompt", "output_a", "output_b")
    missing = [key for key in needed if not isinstance(entry.get(key), str | int | float)]
    if missing:
        raise RatingsError(f"{where} needs '{missing[0]}' for a {mode} campaign")
    expect = entry.get("expect")
    if mode == "pairwise":
        gold = {PAIRWISE_QUESTION: _accepted(expect, where, _PAIRWISE_ANSWERS)}
        outputs: tuple[str, ...] = (str(entry["output_a"]), str(entry["output_b"]))
        runs: tuple[str, ...] = ("gold:a", "gold:b")
    else:
        assert rubric is not None
        if not isinstance(expect, Mapping) or not expect:
            raise RatingsError(f"{where} needs expect: a mapping of criterion to accepted scores")
        unknown = sorted(str(name) for name in expect if name not in rubric.criterion_names)
        if unknown:
            raise RatingsError(f"{where} expects criterion '{unknown[0]}', which the rubric does not have")
        points = tuple(str(point) for point in SCALE_POINTS)
        gold = {str(name): _accepted(value, where, points) for name, value in expect.items()}
        outputs, runs = (str(entry["output"]),), ("gold",)
    target = entry.get("target")
    return Item(
        item_id=f"gold-{index:03d}",
        prompt=str(entry["prompt"]),
        outputs=outputs,
        runs=runs,
        target=None if target is None else str(target),
        gold=gold,
    )


def load_gold(path: str | Path, mode: Mode, rubric: Rubric | None = None) -> list[Item]:
    """Gold items from a YAML list (see the module docstring)."""
    file = Path(path)
    entries = load_yaml_file(file, "gold item file", RatingsError)
    if not isinstance(entries, list) or not entries:
        raise RatingsError(f"gold items {file} must be a non-empty YAML list")
    return [_gold_item(entry, index, mode, rubric, str(file)) for index, entry in enumerate(entries, 1)]


def plan_campaign(
    store: ResultStore,
    *,
    campaign_id: str,
    mode: str,
    runs: Sequence[str],
    rubric: Rubric | None = None,
    tasks: Sequence[str] = (),
    limit: int | None = None,
    overlap: int = 3,
    gold: Sequence[Item] = (),
    roster: Sequence[str] = (),
    seed: int = 0,
    description: str = "",
) -> CampaignPlan:
    """The campaign and its items, checked; nothing is written (see `RatingsDB.create_campaign`)."""
    if not CAMPAIGN_ID_RE.match(campaign_id):
        raise RatingsError(
            f"campaign name '{campaign_id}' must be letters, digits, '.', '_' or '-' (80 at most), "
            "starting with a letter or digit"
        )
    if mode not in MODES:
        raise RatingsError(f"mode must be one of {', '.join(MODES)}, not '{mode}'")
    if mode == "rubric" and rubric is None:
        raise RatingsError("a rubric campaign needs a rubric YAML file (--rubric)")
    if overlap < 1:
        raise RatingsError("the overlap (raters per item) must be at least 1")
    if limit is not None and limit < 1:
        raise RatingsError("the document limit must be at least 1")
    if not store.exists():
        raise RatingsError(f"no results store at {store.root}")
    run_ids = list(dict.fromkeys(resolve_run(store, selector) for selector in runs))
    if not run_ids or (mode == "pairwise" and len(run_ids) < 2):
        raise RatingsError(f"a {mode} campaign needs {'two or more' if mode == 'pairwise' else 'a'} run(s)")
    samples = {run_id: _rated_samples(store, run_id, tasks) for run_id in run_ids}
    notes: list[str] = []
    if mode == "rubric":
        keys = _sample_keys(set().union(*(set(outputs) for outputs in samples.values())), limit, seed)
        items = _rubric_items(samples, keys)
    else:
        items, notes = _pairwise_items(samples, limit, seed)
    campaign = Campaign(
        campaign_id=campaign_id,
        mode=cast(Mode, mode),  # checked against MODES above
        created_at=datetime.now(UTC),
        runs=tuple(run_ids),
        overlap=overlap,
        seed=seed,
        rubric=rubric if mode == "rubric" else None,
        roster=tuple(dict.fromkeys(normalise_rater(name) for name in roster if name.strip())),
        description=description,
    )
    return CampaignPlan(campaign=campaign, items=(*items, *gold), notes=tuple(notes))
