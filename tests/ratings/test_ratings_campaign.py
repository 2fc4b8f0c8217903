"""Campaigns from the store, rubric and gold files, the Parquet export and `harness ratings`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.ratings import (
    RATINGS_SCHEMA,
    RatingsDB,
    RatingsError,
    export_campaign,
    load_gold,
    load_rubric,
    plan_campaign,
    read_ratings,
)
from harness.ratings.rubric import rubric_from_mapping
from harness.store import ResultStore
from tests.ratings.test_ratings_support import ROOT, RUBRIC_PATH, two_run_store, write_run

GOLD_PAIRWISE = ROOT / "examples" / "gold_pairwise.yaml"
GOLD_RUBRIC = ROOT / "examples" / "gold_rubric.yaml"


def _scale(points: range = range(1, 6)) -> dict[int, str]:
    return {point: f"point {point}" for point in points}


def test_example_rubric_loads() -> None:
    rubric = load_rubric(RUBRIC_PATH)
    assert rubric.criterion_names == ("correctness", "clarity")
    assert rubric.criteria[0].describe(5) == "Fully correct."
    assert rubric.show_target
    assert rubric_from_mapping(rubric.to_mapping()) == rubric


@pytest.mark.parametrize(
    ("rubric", "message"),
    [
        ({"name": "r", "criteria": [{"name": "c", "question": "q", "scale": _scale(range(1, 5))}]}, "point"),
        ({"name": "r", "criteria": [{"name": "c", "question": "q", "scale": {**_scale(), 6: "x"}}]}, "1-5"),
        (
            {"name": "r", "criteria": [{"name": "c", "question": "q", "scale": _scale(), "weight": 2}]},
            "'weight'",
        ),
        ({"name": "r", "criterion": []}, "unknown key 'criterion'"),
        ({"name": "r", "criteria": []}, "non-empty list"),
        ({"name": "r", "criteria": [{"name": "Bad Name", "question": "q", "scale": _scale()}]}, "lower-case"),
        (
            {"name": "r", "criteria": [{"name": "c", "question": "q", "scale": _scale()}] * 2},
            "more than once",
        ),
        ({"name": "r", "criteria": [{"name": "c", "question": "", "scale": _scale()}]}, "question"),
    ],
)
def test_bad_rubrics_name_the_problem(rubric: dict[str, object], message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        rubric_from_mapping(rubric)


def test_gold_files(tmp_path: Path) -> None:
    rubric = load_rubric(RUBRIC_PATH)
    rubric_gold = load_gold(GOLD_RUBRIC, "rubric", rubric)
    assert rubric_gold[0].gold == {"correctness": ("1", "2")}
    pairwise_gold = load_gold(GOLD_PAIRWISE, "pairwise")
    assert [item.gold["preference"] for item in pairwise_gold if item.gold] == [("a",), ("b",), ("both_bad",)]
    assert pairwise_gold[0].runs == ("gold:a", "gold:b")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {prompt: p, output: o, expect: {tone: [1]}}\n")
    with pytest.raises(RatingsError, match="criterion 'tone'"):
        load_gold(bad, "rubric", rubric)
    with pytest.raises(RatingsError, match="needs 'output_a'"):
        load_gold(bad, "pairwise")
    bad.write_text("- {prompt: p, output_a: x, output_b: y, expect: left}\n")
    with pytest.raises(RatingsError, match="'left'"):
        load_gold(bad, "pairwise")


def test_rubric_campaign_from_the_store(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    good, bad = two_run_store(store.root, documents=12)
    rubric = load_rubric(RUBRIC_PATH)
    plan = plan_campaign(
        store,
        campaign_id="rubric-1",
        mode="rubric",
        runs=[good, bad],
        rubric=rubric,
        limit=5,
        gold=load_gold(GOLD_RUBRIC, "rubric", rubric),
    )
    assert plan.gold_items == 3
    rated = [item for item in plan.items if not item.is_gold]
    assert len(rated) == 10  # the same 5 sampled documents for both runs
    assert {item.doc_id for item in rated if item.runs == (good,)} == {
        item.doc_id for item in rated if item.runs == (bad,)
    }
    first = next(item for item in rated if item.runs == (good,))
    assert first.prompt == f"Question {first.doc_id}?" and first.target == f"answer {first.doc_id}"
    again = plan_campaign(
        store, campaign_id="rubric-1", mode="rubric", runs=[good, bad], rubric=rubric, limit=5
    )
    assert [item.item_id for item in again.items] == [item.item_id for item in rated]  # seeded sample


def test_pairwise_campaign_pairs_shared_documents(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    good, bad = two_run_store(store.root, documents=6)
    same = write_run(store.root, "same", {d: f"wrong {d}" for d in range(6)}, order=2)  # identical to bad
    plan = plan_campaign(store, campaign_id="pw", mode="pairwise", runs=[good, bad, same])
    pairs = {item.runs for item in plan.items}
    assert pairs == {(good, bad), (good, same)}
    assert len(plan.items) == 12
    assert plan.notes == ("left out 6 pair(s) whose two outputs are identical",)
    item = plan.items[0]
    assert item.doc_id is not None
    assert item.outputs == (
        f"answer {item.doc_id}" if item.doc_id % 2 == 0 else f"guess {item.doc_id}",
        f"wrong {item.doc_id}",
    )


def test_campaigns_without_shared_prompts_are_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    write_run(store.root, "early", {d: "x" for d in range(0, 5)})
    write_run(store.root, "late", {d: "y" for d in range(5, 10)}, order=1)
    with pytest.raises(RatingsError, match="share no prompts"):
        plan_campaign(store, campaign_id="pw", mode="pairwise", runs=["early", "late"])
    write_run(store.root, "third", {d: "z" for d in range(0, 5)}, order=2)
    write_run(store.root, "fourth", {d: "w" for d in range(5, 10)}, order=3)
    with pytest.raises(RatingsError, match="cannot be ranked against each other: early, third; late, fourth"):
        plan_campaign(store, campaign_id="pw", mode="pairwise", runs=["early", "late", "third", "fourth"])
    with pytest.raises(RatingsError, match="two or more"):
        plan_campaign(store, campaign_id="pw", mode="pairwise", runs=["early"])
    with pytest.raises(HarnessError, match="unknown run 'nope'"):
        plan_campaign(store, campaign_id="pw", mode="pairwise", runs=["early", "nope"])
    with pytest.raises(RatingsError, match="campaign name"):
        plan_campaign(store, campaign_id="../x", mode="pairwise", runs=["early", "late"])
    with pytest.raises(RatingsError, match="no generated outputs"):
        plan_campaign(store, campaign_id="pw", mode="pairwise", runs=["early", "late"], tasks=["other"])


def test_export_writes_the_parquet_ratings_table(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    good, bad = two_run_store(store.root, documents=4)
    db = RatingsDB.for_store(store.root)
    plan = plan_campaign(
        store, campaign_id="pw", mode="pairwise", runs=[good, bad], gold=load_gold(GOLD_PAIRWISE, "pairwise")
    )
    db.create_campaign(plan.campaign, plan.items)
    rater = db.register_rater("pw", "ann")
    votes = []
    while (served := db.next_item("pw", rater)) is not None:
        db.submit(
            "pw",
            rater,
            served.item.item_id,
            {"preference": "A"},
            display_order=served.display_order,
            comment=" ok ",
        )
        votes.append(served)
    path, rows = export_campaign(db, store.root, "pw")
    assert path == store.root / "ratings" / "part-pw.parquet" and rows == len(votes) == 7
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    frame = pd.read_parquet(store.root / "ratings")  # readable without harness
    assert pq.read_schema(path).equals(RATINGS_SCHEMA, check_metadata=False)
    assert len(frame) == 7 and set(frame["comment"]) == {"ok"}
    real = frame[~frame["is_gold"]]
    for row in real.itertuples():
        assert row.winner_run == row.display_order[0]  # every vote was A, the left answer
        assert {row.run_a, row.run_b} == set(row.display_order)
    gold = frame[frame["is_gold"]].set_index("item_id")
    by_item = {served.item.item_id: served for served in votes}
    for item_id, row in gold.iterrows():
        shown_left = by_item[item_id].display_order[0]
        expected = {"gold-001": "gold:a", "gold-002": "gold:b"}.get(str(item_id))
        assert row["gold_correct"] == (shown_left == expected)
    assert read_ratings(store.root, "pw").shape == frame.shape
    assert read_ratings(store.root, "other").empty


def test_cli_campaign_list_export_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    good, bad = two_run_store(store, documents=8)
    create = [
        "ratings",
        "campaign",
        "q1",
        "--mode",
        "rubric",
        "--runs",
        good,
        bad,
        "--rubric",
        str(RUBRIC_PATH),
    ]
    assert main([*create, "--store", str(store), "--overlap", "2", "--raters", "Ann,bob"]) == 0
    assert "16 items + 0 gold" in capsys.readouterr().out
    db = RatingsDB.for_store(store)
    for name in ("ann", "bob"):
        rater = db.register_rater("q1", name)
        while (served := db.next_item("q1", rater)) is not None:
            score = 5 if served.item.runs == (good,) else 1
            answers = {"correctness": score, "clarity": score}
            db.submit("q1", rater, served.item.item_id, answers, display_order=served.display_order)
    assert main(["ratings", "list", "--store", str(store), "--format", "json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["campaign"], listed["items"], listed["raters"], listed["progress"]) == ("q1", 16, 2, 1.0)
    assert main(["ratings", "export", "--store", str(store)]) == 0
    assert "part-q1.parquet: 64 rating(s)" in capsys.readouterr().out
    assert (
        main(["ratings", "summary", "q1", "--store", str(store), "--format", "json", "--resamples", "50"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    means = {(row["run_id"], row["question"]): row["mean"] for row in summary["scores"]}
    assert means == {
        (good, "clarity"): 5.0,
        (good, "correctness"): 5.0,
        (bad, "clarity"): 1.0,
        (bad, "correctness"): 1.0,
    }
    assert {row["alpha"] for row in summary["agreement"]} == {1.0}
    assert main(["ratings", "summary", "q1", "--store", str(store)]) == 0
    assert "Human scores" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    two_run_store(store, documents=3)
    assert (
        main(["ratings", "campaign", "x", "--mode", "rubric", "--runs", "good", "--store", str(store)]) == 2
    )
    assert "needs a rubric" in capsys.readouterr().err
    assert main(["ratings", "summary", "nope", "--store", str(store)]) == 2
    assert "no ratings database" in capsys.readouterr().err
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"\x00garbage" * 64)
    assert main(["ratings", "list", "--db", str(broken), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a usable ratings database" in err
