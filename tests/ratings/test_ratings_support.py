"""Helpers shared by the ratings tests (no tests here): small results stores written directly.

Runs are written with `ResultStore.write_run`, so a test controls exactly which documents each run
answered and how, in milliseconds, without evaluating a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.ratings import Campaign, Item, RatingsDB, load_rubric
from harness.store import ResultStore, RunRecord, SampleRecord, ScoreRecord

ROOT = Path(__file__).resolve().parents[2]
RUBRIC_PATH = ROOT / "examples" / "rubric.yaml"
TASK = "qa"
_START = datetime(2026, 1, 1, tzinfo=UTC)


def write_run(
    store: Path,
    run_id: str,
    outputs: Mapping[int, str],
    *,
    targets: Mapping[int, str] | None = None,
    order: int = 0,
) -> str:
    """A completed run of task `qa` whose document `doc_id` was answered `outputs[doc_id]`.

    Exact match against `targets` (default: "answer <doc_id>") is stored per document and overall.
    """
    targets = targets or {doc_id: f"answer {doc_id}" for doc_id in outputs}
    samples = [
        SampleRecord(
            run_id=run_id,
            task=TASK,
            doc_id=doc_id,
            prompt=f"Question {doc_id}?",
            target=targets[doc_id],
            prediction=text,
            choice_logprobs=None,
            statistics={"exact_match/match": float(text == targets[doc_id]), "exact_match/count": 1.0},
        )
        for doc_id, text in sorted(outputs.items())
    ]
    accuracy = sum(s.statistics["exact_match/match"] for s in samples) / max(len(samples), 1)
    score = ScoreRecord(
        run_id, TASK, "1", "exact_match", accuracy, None, None, None, len(samples), True, "em"
    )
    run = RunRecord(
        run_id=run_id,
        created_at=_START + timedelta(minutes=order),
        model=f"model-{run_id}",
        model_fingerprint=run_id,
        experiment="exp",
        step=order,
        tasks=(TASK,),
    )
    ResultStore(store).write_run(run, [score], samples)
    return run_id


def two_run_store(store: Path, documents: int = 12) -> tuple[str, str]:
    """Runs `good` (right on even documents) and `bad` (always wrong) on the same documents."""
    good = write_run(
        store, "good", {d: f"answer {d}" if d % 2 == 0 else f"guess {d}" for d in range(documents)}
    )
    bad = write_run(store, "bad", {d: f"wrong {d}" for d in range(documents)}, order=1)
    return good, bad


def simple_campaign(
    db: RatingsDB, campaign_id: str, items: int, *, overlap: int = 1, mode: str = "rubric"
) -> None:
    """A campaign of `items` synthetic items (no store needed), for storage tests."""
    rubric = load_rubric(RUBRIC_PATH) if mode == "rubric" else None
    runs = ("run-a",) if mode == "rubric" else ("run-a", "run-b")
    campaign = Campaign(
        campaign_id=campaign_id,
        mode="rubric" if mode == "rubric" else "pairwise",
        created_at=_START,
        runs=runs,
        overlap=overlap,
        seed=7,
        rubric=rubric,
    )
    made = [
        Item(
            item_id=f"item-{index:04d}",
            prompt=f"prompt {index}",
            outputs=tuple(f"out {r}" for r in runs),
            runs=runs,
        )
        for index in range(items)
    ]
    db.create_campaign(campaign, made)
