"""Groups (lm-eval's `group:` files): membership, overrides, tags, and aggregates equal to lm-eval's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness
from harness.metrics import Score
from harness.tasks.groups import AggregateSpec, TaskGroup, group_scores
from harness.tasks.registry import resolve_selection
from harness.tasks.task import Task

lm_eval_metrics = pytest.importorskip("lm_eval.api.metrics")

TASK = """task: {name}
tag: [yes_no_tasks]
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


def _suite(folder: Path, sizes: dict[str, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in sizes.items():
        docs = [{"question": f"{name} question {i}?", "label": (i * 7 + len(name)) % 2} for i in range(size)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        (folder / f"{name}.yaml").write_text(TASK.format(name=name), encoding="utf-8")
    return folder


def _score(metric: str, value: float, stderr: float | None, n: int) -> Score:
    return Score(metric, value, stderr, None, None, n, True, metric)


def _group(sizes: list[int], weight_by_size: bool) -> tuple[TaskGroup, dict[str, list[Score]]]:
    tasks = []
    scores = {}
    for index, n in enumerate(sizes):
        name = f"t{index}"
        tasks.append(Task.__new__(Task))
        tasks[-1].config = type("C", (), {"task": name})()
        value = 0.2 + 0.15 * index
        scores[name] = [
            _score("acc", value, 0.01 + 0.02 * index, n),
            _score("acc,strict", value / 2, None, n),
        ]
    return TaskGroup("g", tuple(tasks), (AggregateSpec("acc", None, weight_by_size),)), scores


@pytest.mark.parametrize("sizes", [[10, 10], [3, 50, 7], [100, 1, 20, 5]])
@pytest.mark.parametrize("weight_by_size", [True, False])
def test_aggregates_equal_lm_evals_formulas(sizes: list[int], weight_by_size: bool) -> None:
    group, scores = _group(sizes, weight_by_size)
    rows = {row.metric: row for row in group_scores(group, scores)}
    # Filters are discovered from the leaf tasks, as lm-eval does when filter_list is not given.
    assert set(rows) == {"acc", "acc,strict"}
    values = [scores[f"t{i}"][0].value for i in range(len(sizes))]
    stderrs = [scores[f"t{i}"][0].stderr for i in range(len(sizes))]
    expected = lm_eval_metrics.aggregate_subtask_metrics(values, sizes, weight_by_size)
    assert rows["acc"].value == pytest.approx(expected, rel=1e-12)
    if weight_by_size:
        expected_stderr = lm_eval_metrics.pooled_sample_stderr(stderrs, sizes)
    else:
        expected_stderr = lm_eval_metrics.unweighted_mean_stderr(stderrs)
    assert rows["acc"].stderr == pytest.approx(expected_stderr, rel=1e-12)
    assert rows["acc"].n == sum(sizes)
    assert rows["acc"].ci_low is not None and rows["acc"].ci_low < rows["acc"].value
    # One child without a stderr: lm-eval reports "N/A", we report none.
    assert rows["acc,strict"].stderr is None


def test_groups_of_groups_tags_and_overrides_run_end_to_end(tmp_path: Path) -> None:
    folder = _suite(tmp_path / "suite", {"alpha": 6, "beta": 10, "gamma": 4})
    (folder / "inner.yaml").write_text(
        "group: inner\ntask: [alpha, beta]\naggregate_metric_list: [{metric: acc}]\n", encoding="utf-8"
    )
    (folder / "outer.yaml").write_text(
        "group: outer\ngroup_alias: Outer\ntask:\n  - inner\n  - task: gamma\n    description: 'Answer. '\n"
        "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: false\n",
        encoding="utf-8",
    )
    selection = resolve_selection(["outer"], [folder])
    assert [task.name for task in selection.tasks] == ["alpha", "beta", "gamma"]
    assert [group.name for group in selection.groups] == ["outer", "inner"]
    gamma = selection.tasks[2]
    assert gamma.config.description == "Answer. "
    assert gamma.build_instances(1)[0].prompt.startswith("Answer. ")

    report = harness.evaluate("mock:1", ["outer"], include_paths=[folder], write=False, use_cache=False)
    rows = {(row.task, row.metric): row for row in report.scores}
    leaf = {name: rows[(name, "acc")] for name in ("alpha", "beta", "gamma")}
    inner = rows[("inner", "acc")]
    assert inner.n == 16
    assert inner.value == pytest.approx((leaf["alpha"].value * 6 + leaf["beta"].value * 10) / 16)
    outer = rows[("outer", "acc")]
    assert outer.value == pytest.approx(sum(row.value for row in leaf.values()) / 3)

    tagged = resolve_selection(["yes_no_tasks"], [folder])
    assert [task.name for task in tagged.tasks] == ["alpha", "beta", "gamma"] and not tagged.groups


def test_run_time_overrides_replace_the_tasks_settings(tmp_path: Path) -> None:
    folder = _suite(tmp_path / "suite", {"alpha": 6})
    report = harness.evaluate(
        "mock:1", ["alpha"], include_paths=[folder], write=False, use_cache=False, num_fewshot=2
    )
    (evaluation,) = report.evaluations
    assert evaluation.task.config.num_fewshot == 2
    assert evaluation.instances[0].prompt.count("?") == 3


@pytest.mark.parametrize(
    ("values", "sizes"),
    [((0.0, 0.0), (3, 2)), ((1.0, 1.0), (1, 4)), ((0.02, 0.0), (50, 1)), ((0.5, 0.97), (2, 30))],
)
def test_group_interval_of_proportions_stays_inside_0_1(
    values: tuple[float, ...], sizes: tuple[int, ...]
) -> None:
    """lm-eval's pooled stderr is kept; the interval is Wilson's: 0/n, n/n, tiny groups stay in [0, 1]."""
    from harness.tasks.groups import _group_interval

    leaves = []
    for value, n in zip(values, sizes, strict=True):
        stderr = (value * (1 - value) / (n - 1)) ** 0.5 if n > 1 else 0.0
        leaves.append(
            Score("acc", value, stderr, max(0.0, value - 0.1), min(1.0, value + 0.1), n, True, "acc")
        )
    total = sum(sizes)
    value = sum(v * n for v, n in zip(values, sizes, strict=True)) / total
    pooled = sum(
        (n - 1) * s.stderr**2 * n for n, s in zip(sizes, leaves, strict=True) if s.stderr is not None
    )
    stderr = (pooled / (total - len(sizes)) / total) ** 0.5
    low, high = _group_interval(value, stderr, leaves)
    assert low is not None and high is not None
    assert 0.0 <= low <= value <= high <= 1.0
    if value in (0.0, 1.0):
        assert high - low > 0.0  # an all-wrong or all-right group is not certain


def test_group_interval_of_unbounded_metrics_stays_normal() -> None:
    from harness.tasks.groups import _group_interval

    leaves = [Score("word_perplexity", 12.0, 1.5, 9.0, 15.0, 40, False, "w")]
    assert _group_interval(12.0, 1.5, leaves) == pytest.approx(
        (12.0 - 1.959963984540054 * 1.5, 12.0 + 1.959963984540054 * 1.5)
    )
