"""Task groups on the leaderboard: a group is one column and one task in ranking; its members drill down.

The plain functions run over hand-made and synthetic stores; the page runs headless (`AppTest`) over a
store of a mock model that evaluated an lm-eval group (`outer` = `inner` (alpha, beta) + gamma) and a
task with two response filters, next to a run that evaluated no group.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import harness
from harness.leaderboard.ranking import (
    MEAN_RANK,
    TASK_COUNT,
    LeaderboardFilters,
    build_leaderboard,
    column_label,
    display_table,
    group_choices,
    member_table,
    metric_choices,
)
from harness.leaderboard.synthetic import GROUP, SUBGROUP, generate_store, group_task_names, task_names
from harness.leaderboard.task_groups import TaskGroups, task_groups
from harness.leaderboard.ui import STORE_KEY
from harness.leaderboard.views import VIEWS_DIR
from harness.store import Provenance, ResultStore, RunRecord, ScoreRecord, list_store, load_store

APP = Path(VIEWS_DIR).parent / "app.py"
TIMEOUT = 30

# -- the groups a store recorded -------------------------------------------------------------------


def test_nesting_is_read_back_from_the_leaf_sets() -> None:
    groups = TaskGroups(
        {
            "mmlu": frozenset("abcdefg"),
            "stem": frozenset("abc"),
            "humanities": frozenset("de"),
        }
    )
    assert groups.children("mmlu") == ("humanities", "stem", "f", "g")
    assert groups.children("stem") == ("a", "b", "c")
    everything = {"mmlu", "stem", "humanities", *"abcdefg", "solo"}
    assert groups.columns(everything) == ("mmlu", "solo")
    assert groups.members("mmlu", everything) == ("humanities", "stem", "f", "g")
    # A group without a value (here: mmlu, and humanities) shows what is below it instead.
    assert groups.columns(everything - {"mmlu", "humanities"}) == ("d", "e", "f", "g", "solo", "stem")
    assert groups.outermost("a") == groups.outermost("stem") == "mmlu"
    assert groups.outermost("solo") == "solo"
    assert groups.with_members(["stem", "solo"]) == ("a", "b", "c", "solo", "stem")
    # No groups: every task, sorted, exactly as before groups existed.
    assert TaskGroups().columns({"b", "a"}) == ("a", "b") and not TaskGroups()


def test_groups_come_from_the_runs_provenance() -> None:
    def provenance(groups: object) -> str:
        return json.dumps(Provenance(details={"groups": groups} if groups is not None else {}).to_dict())

    runs = pd.DataFrame(
        {
            "provenance": [
                provenance({"outer": ["alpha", "beta", "gamma"], "inner": ["alpha", "beta"]}),
                provenance({"outer": ["alpha", "beta", "delta"]}),  # another run's version of the group
                provenance(None),
                provenance("not a mapping"),
                "not json",
            ]
        }
    )
    groups = task_groups(runs)
    assert dict(groups.leaves) == {
        "outer": frozenset({"alpha", "beta", "gamma", "delta"}),
        "inner": frozenset({"alpha", "beta"}),
    }
    assert groups.children("outer") == ("inner", "delta", "gamma")
    assert not task_groups(runs.iloc[2:])


# -- ranking ---------------------------------------------------------------------------------------


def _score(run_id: str, task: str, value: float, metric: str = "acc", n: int = 100) -> ScoreRecord:
    stderr = 0.01
    return ScoreRecord(
        run_id=run_id,
        task=task,
        task_version="1",
        metric=metric,
        value=value,
        stderr=stderr,
        ci_low=value - 1.96 * stderr,
        ci_high=value + 1.96 * stderr,
        n=n,
        higher_is_better=True,
        signature=f"{metric}|harness:test",
    )


LEAVES = ("g_1", "g_2", "g_3")


def _grouped_store(tmp_path: Path) -> tuple[pd.DataFrame, TaskGroups]:
    """Runs A and B evaluated the group g (three leaves) and tasks t and u; run C only t and u.

    A wins g and every leaf but loses t and u to B: counting the leaves, A has the better mean rank;
    counting g once, B has."""
    store = ResultStore(tmp_path / "store")
    values = {
        "A": {"t": 0.30, "u": 0.30, "g": 0.60, **dict.fromkeys(LEAVES, 0.60)},
        "B": {"t": 0.90, "u": 0.90, "g": 0.50, **dict.fromkeys(LEAVES, 0.50)},
        "C": {"t": 0.10, "u": 0.10},
    }
    for hour, (run_id, tasks) in enumerate(values.items()):
        grouped = "g" in tasks
        scores = [_score(run_id, task, value, n=300 if task == "g" else 100) for task, value in tasks.items()]
        # Filtered metrics beside the plain ones: only some tasks have them.
        scores.append(_score(run_id, "t", tasks["t"] / 2, metric="exact_match,strict-match"))
        details = {"groups": {"g": list(LEAVES)}} if grouped else {}
        run = RunRecord(
            run_id=run_id,
            created_at=datetime(2026, 3, 1, hour, tzinfo=UTC),
            model=f"model-{run_id}",
            model_fingerprint=run_id,
            experiment="exp",
            step=None,
            tasks=tuple(task for task in tasks if task != "g"),
            provenance=Provenance(details=details),
        )
        store.write_run(run, scores, [])
    data = load_store(list_store(store.root))
    return data.scores, task_groups(data.runs)


def test_ranking_counts_a_group_once(tmp_path: Path) -> None:
    scores, groups = _grouped_store(tmp_path)
    board = build_leaderboard(scores, metric="acc", rank_by=MEAN_RANK, groups=groups)
    assert board.tasks == ("g", "t", "u")
    table = board.table.set_index("run_id")
    assert table[TASK_COUNT].to_dict() == {"A": 3, "B": 3, "C": 2}
    assert table.loc["A", MEAN_RANK] == pytest.approx((1 + 2 + 2) / 3)
    assert board.table["run_id"].tolist() == ["B", "A", "C"]
    # The average covers g once: (0.6 + 0.3 + 0.3) / 3, not a mean over the leaves as well.
    assert table.loc["A", "average"] == pytest.approx(0.4)
    # Without the groups every leaf is a task, and A's three leaf wins outvote its two losses.
    flat = build_leaderboard(scores, metric="acc", rank_by=MEAN_RANK)
    assert flat.tasks == ("g", *LEAVES, "t", "u")
    assert flat.table["run_id"].tolist() == ["A", "B", "C"]
    assert flat.table.set_index("run_id").loc["A", TASK_COUNT] == 6


def test_default_table_has_the_group_and_the_drill_down_its_members(tmp_path: Path) -> None:
    scores, groups = _grouped_store(tmp_path)
    board = build_leaderboard(scores, groups=groups)
    shown = display_table(board)
    assert "g" in shown.columns and not set(LEAVES) & set(shown.columns)
    assert board.members == {"g": LEAVES}
    assert group_choices(board) == {"g": "g"}
    drill = member_table(board, "g")
    assert drill["run_id"].tolist() == [run for run in board.table["run_id"] if run != "C"]  # C has no g
    assert list(drill.columns[:4]) == ["rank", "model", "experiment", "step"]
    assert [column for column in drill.columns if column in ("g", *LEAVES)] == ["g", *LEAVES]
    assert drill.set_index("run_id").loc["A", "g_2"] == pytest.approx(0.6)
    assert "g_1 95% CI" in drill.columns and "g_1 95% CI" not in member_table(
        board, "g", show_intervals=False
    )
    # A task filter naming the group keeps its members for the drill-down.
    filtered = build_leaderboard(scores, groups=groups, filters=LeaderboardFilters(tasks=("g",)))
    assert filtered.tasks == ("g",) and filtered.members == {"g": LEAVES}
    # Filtering to one leaf shows that leaf: its group has no value left to stand for it.
    leaf = build_leaderboard(scores, groups=groups, filters=LeaderboardFilters(tasks=("g_1",)))
    assert leaf.tasks == ("g_1",) and not leaf.members
    models = build_leaderboard(scores, rows="models", groups=groups)
    assert models.tasks == ("g", "t", "u") and models.members == {"g": LEAVES}


def test_a_group_without_a_value_for_the_metric_shows_its_members(tmp_path: Path) -> None:
    scores, groups = _grouped_store(tmp_path)
    extra = scores[scores["task"].isin(LEAVES)].assign(metric="acc_norm")
    board = build_leaderboard(pd.concat([scores, extra]), metric="acc_norm", groups=groups)
    assert board.tasks == LEAVES and not board.members


def test_metric_choices_count_a_group_once(tmp_path: Path) -> None:
    scores, groups = _grouped_store(tmp_path)
    # acc: g and its three leaves (four names, one task); exact_match,strict-match: t and u (two tasks).
    acc = scores[(scores["metric"] == "acc") & scores["task"].isin(("g", *LEAVES))]
    strict = scores[scores["task"] == "t"].assign(metric="exact_match,strict-match")
    mixed = pd.concat([acc, strict, strict.assign(task="u")], ignore_index=True)
    assert metric_choices(mixed) == ["acc", "exact_match,strict-match"]
    assert metric_choices(mixed, groups) == ["exact_match,strict-match", "acc"]


def test_filtered_metrics_name_their_filter_in_the_header() -> None:
    assert column_label("gsm8k", "exact_match,strict-match") == "gsm8k (strict-match)"
    assert column_label("gsm8k", "exact_match,flexible-extract") == "gsm8k (flexible-extract)"
    assert column_label("arc", "acc") == "arc"
    # With a direction, the header names the metric and its arrow.
    assert column_label("gsm8k", "exact_match,strict-match", True) == "gsm8k (strict-match) · exact_match ↑"
    assert column_label("wiki", "word_perplexity", False) == "wiki · word_perplexity ↓"


def test_synthetic_group_and_stores_without_groups_unchanged(tmp_path: Path) -> None:
    plain_root, grouped_root = tmp_path / "plain", tmp_path / "grouped"
    generate_store(plain_root, runs=4, tasks=2, samples=20, experiments=2, bootstrap_resamples=0)
    generate_store(
        grouped_root, runs=4, tasks=2, samples=20, experiments=2, bootstrap_resamples=0, group_tasks=4
    )
    plain, grouped = load_store(list_store(plain_root)), load_store(list_store(grouped_root))
    # A store without groups: the same table with or without group handling.
    assert not task_groups(plain.runs)
    before = build_leaderboard(plain.scores)
    after = build_leaderboard(plain.scores, groups=task_groups(plain.runs))
    pd.testing.assert_frame_equal(before.table, after.table)
    assert before.tasks == after.tasks == tuple(sorted(task_names(2)))
    # The group's runs (0 and 2) keep every other number as the store without the group has it.
    groups = task_groups(grouped.runs)
    assert dict(groups.leaves) == {
        GROUP: frozenset(group_task_names(4)),
        SUBGROUP: frozenset(group_task_names(4)[:2]),
    }
    common = grouped.scores.merge(plain.scores, on=["run_id", "task", "metric"], suffixes=("", "_plain"))
    assert len(common) == len(plain.scores)
    assert (common["value"] == common["value_plain"]).all()
    board = build_leaderboard(grouped.scores, groups=groups)
    assert board.tasks == tuple(sorted([*task_names(2), GROUP]))
    assert board.members == {
        GROUP: (SUBGROUP, *group_task_names(4)[2:]),
        SUBGROUP: tuple(group_task_names(4)[:2]),
    }
    assert group_choices(board) == {GROUP: GROUP, SUBGROUP: f"{GROUP} › {SUBGROUP}"}
    counts = board.table.set_index("run_id")[TASK_COUNT]
    assert counts.to_dict() == {
        run: 3 if run.startswith(("synth-0000", "synth-0002")) else 2 for run in counts.index
    }
    stored = grouped.scores.set_index(["run_id", "task", "metric"])["value"]
    drill = member_table(board, SUBGROUP).set_index("run_id")
    for run_id in drill.index:
        assert drill.loc[run_id, SUBGROUP] == stored[(run_id, SUBGROUP, "acc")]
        leaves = [stored[(run_id, leaf, "acc")] for leaf in group_task_names(4)[:2]]
        assert drill.loc[run_id, SUBGROUP] == pytest.approx(sum(leaves) / 2)  # equal sizes


# -- the page --------------------------------------------------------------------------------------

MC_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {name}.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: ["yes", "no"]
doc_to_target: label
"""
FILTERED_TASK = r"""task: qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: qa.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\n"]
metric_list:
  - metric: exact_match
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "answer (\\d+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(\\d+)"
      - function: take_first
"""


def _suite(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, size in {"alpha": 6, "beta": 10, "gamma": 4, "delta": 5}.items():
        docs = [{"question": f"{name} question {i}?", "label": (i * 7 + len(name)) % 2} for i in range(size)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
        (folder / f"{name}.yaml").write_text(MC_TASK.format(name=name))
    questions = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(8)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in questions))
    (folder / "qa.yaml").write_text(FILTERED_TASK)
    (folder / "inner.yaml").write_text(
        "group: inner\ntask: [alpha, beta]\naggregate_metric_list: [{metric: acc}]\n"
    )
    (folder / "outer.yaml").write_text(
        "group: outer\ntask: [inner, gamma]\naggregate_metric_list: [{metric: acc}]\n"
    )
    return folder


@pytest.fixture(scope="module")
def group_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("lb-groups")
    suite = _suite(base / "suite")
    store = base / "store"
    for name, seed, tasks in (("grouped", "1", ["outer", "qa"]), ("plain", "2", ["delta", "qa"])):
        harness.evaluate(
            f"mock:{seed}",
            tasks,
            include_paths=[suite],
            store=store,
            model_args={"name": name},
            bootstrap_resamples=0,
            use_cache=False,
        )
    return store


def _app(store: Path) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.session_state[STORE_KEY] = str(store)
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def _headers(app: AppTest, index: int = 0) -> dict[str, str]:
    config = json.loads(app.dataframe[index].proto.columns)
    return {column: spec["label"] for column, spec in config.items() if "label" in spec}


def test_page_shows_a_group_as_one_column_with_a_drill_down(group_store: Path) -> None:
    app = _app(group_store)
    table = app.dataframe[0].value
    assert {"outer", "qa", "delta"} <= set(table.columns)
    assert not {"alpha", "beta", "gamma", "inner"} & set(table.columns)
    assert table.set_index("model")["tasks"].to_dict() == {"grouped": 2, "plain": 2}
    captions = "\n".join(str(caption.value) for caption in app.caption)
    assert "× 3 tasks (outer is a group, counted as one task)" in captions
    # The primary metric of qa is one of its two filters; its header says which.
    label = _headers(app)["qa"]
    assert label in ("qa (strict-match) · exact_match ↑", "qa (flexible-extract) · exact_match ↑")
    assert _headers(app)["qa 95% CI"] == f"{label} 95% CI"
    assert _headers(app)["outer"] == "outer · acc ↑"

    drill = app.selectbox(key="lb_group")
    assert drill.value is None and len(app.dataframe) == 1  # nothing spread until asked
    assert drill.options == ["outer", "outer › inner"]
    drill.set_value("outer").run()
    members = app.dataframe[1].value
    assert members["model"].tolist() == ["grouped"]
    assert [column for column in members.columns if column in {"outer", "inner", "gamma", "alpha"}] == [
        "outer",
        "inner",
        "gamma",
    ]
    app.selectbox(key="lb_group").set_value("inner").run()
    assert {"inner", "alpha", "beta"} <= set(app.dataframe[1].value.columns)
    assert "not ranked" in "\n".join(str(caption.value) for caption in app.caption)
    # The main table is the same whatever the drill-down shows.
    pd.testing.assert_frame_equal(app.dataframe[0].value, table)

    app.selectbox(key="lb_metric").set_value("exact_match,strict-match").run()
    assert not app.exception
    assert _headers(app)["qa"] == "qa (strict-match) · exact_match ↑"


def test_page_of_a_store_without_groups_has_no_drill_down(group_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    suite = group_store.parent / "suite"
    harness.evaluate(
        "mock:3", ["delta"], include_paths=[suite], store=store, bootstrap_resamples=0, use_cache=False
    )
    app = _app(store)
    assert "lb_group" not in [selectbox.key for selectbox in app.selectbox]
    assert "group" not in "\n".join(str(caption.value) for caption in app.caption)
    assert _headers(app)["delta"] == "delta · acc ↑"
