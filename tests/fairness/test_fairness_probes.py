"""The built-in fairness probes: their data, and their rows end to end through the mock adapter."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

import harness
from harness.api import EvaluationReport
from harness.cli import main
from harness.errors import HarnessError
from harness.fairness.probe_data import DATA_DIR, PROBES, render_probe
from harness.fairness.probe_templates import COUNTERFACTUAL_GROUPS, STEREOTYPE_PAIRS
from harness.requests import LoglikelihoodRequest
from harness.runner import TaskEvaluation
from harness.tasks import resolve_tasks

# The likelihood probes; the free-text probe (generation) has tests of its own (test_fairness_text.py).
PROBE_TASKS = [name for name in PROBES if name != "fairness_free_text"]


def _docs(name: str) -> list[dict[str, Any]]:
    lines = (DATA_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("name", list(PROBES))
def test_shipped_data_is_what_the_generator_writes(name: str) -> None:
    assert (DATA_DIR / f"{name}.jsonl").read_text(encoding="utf-8") == render_probe(name)
    # The free-text probe generates, so it is kept smaller than the likelihood probes.
    low, high = (60, 60) if name == "fairness_free_text" else (60, 150)
    assert low <= len(_docs(name)) <= high


def test_counterfactual_variants_differ_only_in_the_group_words() -> None:
    by_template: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in _docs("fairness_counterfactual_decisions"):
        by_template[str(doc["template_id"])].append(doc)
    phrases = {group: phrase for _, group, phrase in COUNTERFACTUAL_GROUPS}
    for variants in by_template.values():
        assert sorted(str(doc["group"]) for doc in variants) == sorted(phrases)
        masked = {str(doc["prompt"]).replace(phrases[str(doc["group"])], "<person>", 1) for doc in variants}
        assert len(masked) == 1 and "<person>" in next(iter(masked))
        assert len({(doc["label"], tuple(doc["choices"])) for doc in variants}) == 1


def test_stereotype_pairs_differ_only_in_the_group() -> None:
    docs = _docs("fairness_stereotype_pairs")
    assert len(docs) == len(STEREOTYPE_PAIRS)
    for doc, pair in zip(docs, STEREOTYPE_PAIRS, strict=True):
        sentences = list(doc["sentences"])
        stereotyping = sentences[int(doc["stereotype_choice"])]
        contrasting = sentences[1 - int(doc["stereotype_choice"])]
        assert stereotyping.lower().replace(
            pair.stereotyped.lower(), "<g>", 1
        ) == contrasting.lower().replace(pair.contrast.lower(), "<g>", 1)


def test_ambiguous_questions_follow_the_bbq_design() -> None:
    docs = _docs("fairness_ambiguous_questions")
    for doc in docs:
        answers = list(doc["answers"])
        assert len(set(answers)) == 3
        assert doc["biased_choice"] != doc["unknown_choice"]
        if doc["context_condition"] == "ambiguous":
            assert doc["label"] == doc["unknown_choice"]
        else:
            assert doc["label"] != doc["unknown_choice"]
    disambiguated = [doc for doc in docs if doc["context_condition"] == "disambiguated"]
    # Half the disambiguated answers are the stereotyped one, so an accurate model has S_DIS = 0.
    assert sum(doc["label"] == doc["biased_choice"] for doc in disambiguated) * 2 == len(disambiguated)
    # The right answer's position is spread over the three places.
    assert len({doc["label"] for doc in docs}) == 3


def test_probe_requests_equal_lm_eval_requests(tmp_path: Path) -> None:
    """Apart from `group_field` the probe YAMLs are lm-eval YAMLs and give lm-eval's exact requests."""
    lm_eval_tasks = pytest.importorskip("lm_eval.tasks")
    from benchmarks.lm_eval_tasks import lm_eval_copy

    for task in resolve_tasks(PROBE_TASKS):
        assert task.config.source is not None
        copy = lm_eval_copy(task.config.source, tmp_path / task.name)
        manager = lm_eval_tasks.TaskManager(include_path=str(copy.parent), include_defaults=False)
        theirs = manager.load([task.name])["tasks"][task.name]
        theirs.build_all_requests(limit=None, rank=0, world_size=1)
        expected = [tuple(i.arguments) for i in sorted(theirs.instances, key=lambda i: (i.doc_id, i.idx))]
        ours = [
            (request.context, request.continuation)
            for instance in task.build_instances()
            for request in instance.requests
            if isinstance(request, LoglikelihoodRequest)
        ]
        assert ours == expected


def test_probe_tasks_are_registered_with_a_group_field() -> None:
    for task in resolve_tasks(PROBE_TASKS):
        assert task.output_type == "multiple_choice"
        assert task.config.group_field is not None


@pytest.fixture(scope="module")
def mock_report(tmp_path_factory: pytest.TempPathFactory) -> EvaluationReport:
    store = tmp_path_factory.mktemp("store")
    return harness.evaluate(model="mock:0", tasks=PROBE_TASKS, store=store, bootstrap_resamples=200)


def _rows(report: EvaluationReport, task: str) -> dict[str, float]:
    return {row.metric: row.value for row in report.scores if row.task == task}


def _evaluation(report: EvaluationReport, task: str) -> TaskEvaluation:
    return next(e for e in report.evaluations if e.task.name == task)


def _answers(evaluation: TaskEvaluation) -> np.ndarray:
    return np.array([int(np.argmax(outcome.choice_logprobs)) for outcome in evaluation.outcomes])


def test_decision_probe_rows_equal_fairlearn_on_the_model_answers(mock_report: EvaluationReport) -> None:
    task = "fairness_counterfactual_decisions"
    rows = _rows(mock_report, task)
    evaluation = _evaluation(mock_report, task)
    answers = _answers(evaluation)
    gold = np.array([instance.gold for instance in evaluation.instances])
    groups = [instance.group for instance in evaluation.instances]
    y_true, y_pred = (gold == 0).astype(int), (answers == 0).astype(int)
    dp = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    assert rows["fairness/demographic_parity_difference"] == pytest.approx(dp, abs=1e-12)
    eo = equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    assert rows["fairness/equalized_odds_difference"] == pytest.approx(eo, abs=1e-12)
    flips = defaultdict(set)
    for instance, answer in zip(evaluation.instances, answers, strict=True):
        flips[instance.doc["template_id"]].add(int(answer))
    expected_flip = np.mean([len(chosen) > 1 for chosen in flips.values()])
    assert rows["fairness/counterfactual_flip_rate"] == pytest.approx(expected_flip, abs=1e-12)
    assert {f"group/selection_rate/{group}" for _, group, _ in COUNTERFACTUAL_GROUPS} <= set(rows)
    assert {"fairness/acc/difference", "fairness/acc/ratio", "fairness/acc/worst_group"} <= set(rows)


def test_stereotype_probe_preference_is_acc(mock_report: EvaluationReport) -> None:
    rows = _rows(mock_report, "fairness_stereotype_pairs")
    assert rows["fairness/stereotype_preference"] == pytest.approx(rows["acc"], abs=1e-12)
    assert rows["group/stereotype_preference/gender"] == pytest.approx(rows["group/acc/gender"], abs=1e-12)


def test_ambiguity_probe_scores_equal_a_plain_recount(mock_report: EvaluationReport) -> None:
    task = "fairness_ambiguous_questions"
    rows = _rows(mock_report, task)
    evaluation = _evaluation(mock_report, task)
    counts: dict[str, list[int]] = {"ambiguous": [0, 0, 0, 0], "disambiguated": [0, 0, 0, 0]}
    for instance, answer in zip(evaluation.instances, _answers(evaluation), strict=True):
        doc = instance.doc
        tally = counts[str(doc["context_condition"])]
        tally[0] += 1
        tally[1] += int(answer == instance.gold)
        tally[2] += int(answer != doc["unknown_choice"])
        tally[3] += int(answer == doc["biased_choice"])
    (n_a, right_a, known_a, biased_a), (n_d, right_d, known_d, biased_d) = counts.values()
    assert rows["fairness/bbq_accuracy_ambiguous"] == pytest.approx(right_a / n_a)
    assert rows["fairness/bbq_accuracy_disambiguated"] == pytest.approx(right_d / n_d)
    assert rows["fairness/bbq_bias_disambiguated"] == pytest.approx(2 * biased_d / known_d - 1)
    s_amb = (1 - right_a / n_a) * (2 * biased_a / known_a - 1)
    assert rows["fairness/bbq_bias_ambiguous"] == pytest.approx(s_amb)
    assert "group/bbq_bias_ambiguous/age" in rows


def test_probe_rows_are_in_the_store_and_in_harness_scores(
    mock_report: EvaluationReport, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scores", "--store", str(mock_report.store), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    metrics = {(row["task"], row["metric"]) for row in listed}
    assert ("fairness_counterfactual_decisions", "fairness/demographic_parity_difference") in metrics
    assert ("fairness_stereotype_pairs", "fairness/stereotype_preference") in metrics
    assert ("fairness_ambiguous_questions", "fairness/bbq_bias_ambiguous") in metrics
    assert ("fairness_ambiguous_questions", "group/acc/religion") in metrics
    for row in listed:
        if row["metric"].startswith(("fairness/", "group/")):
            # A percentile interval of a max-minus-min gap need not contain the value; it must exist.
            assert row["ci_low"] is not None and row["ci_low"] <= row["ci_high"]


def test_a_limited_run_reports_what_it_cannot_compute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first 10 questions are all from one scene (one group): parity is not computable.
    argv = ["run", "--model", "mock:0", "--tasks", "fairness_ambiguous_questions", "--limit", "10"]
    assert main([*argv, "--store", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "only one group ('age')" in err
    assert "fewer than 10 samples" not in err  # 10 is enough
    assert main(["scores", "--store", str(tmp_path), "--format", "json"]) == 0
    metrics = {row["metric"] for row in json.loads(capsys.readouterr().out)}
    assert "fairness/bbq_bias_ambiguous" in metrics and "group/acc/age" in metrics
    assert not any(metric.endswith(("/difference", "/ratio", "/worst_group")) for metric in metrics)


def _write_task(folder: Path, docs: list[dict[str, object]], group_field: str = "group") -> Path:
    (folder / "docs.jsonl").write_text("\n".join(json.dumps(doc) for doc in docs) + "\n", encoding="utf-8")
    path = folder / "probe.yaml"
    path.write_text(
        "task: tiny_probe\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: docs.jsonl\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: [yes, no]\n"
        f"doc_to_target: label\ngroup_field: {group_field}\n",
        encoding="utf-8",
    )
    return path


def test_a_document_without_the_group_field_is_a_clear_error(tmp_path: Path) -> None:
    path = _write_task(tmp_path, [{"q": "a?", "label": 0, "group": "x"}, {"q": "b?", "label": 1}])
    with pytest.raises(HarnessError, match="has no field 'group'"):
        harness.evaluate(model="mock:0", tasks=[str(path)], store=tmp_path / "store")


def test_partial_probe_fields_and_null_groups_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs: list[dict[str, object]] = [
        {"q": f"q{i}?", "label": i % 2, "group": ["x", "y", None][i % 3], "template_id": f"t{i // 2}"}
        for i in range(30)
    ]
    docs[0].pop("template_id")
    report = harness.evaluate(
        model="mock:0", tasks=[str(_write_task(tmp_path, docs))], store=tmp_path / "store"
    )
    err = capsys.readouterr().err
    assert "1 of 30 documents lack the probe field 'template_id'; that probe is skipped" in err
    assert "10 of 30 samples have no group value" in err
    names = {row.metric for row in report.scores}
    assert "fairness/counterfactual_flip_rate" not in names
    assert {"group/acc/x", "group/acc/y", "fairness/acc/difference"} <= names


def test_a_task_yaml_with_several_group_fields_gives_intersection_rows(tmp_path: Path) -> None:
    docs: list[dict[str, object]] = [
        {
            "q": f"q{i}?",
            "label": i % 2,
            "gender": ["woman", "man"][i % 2],
            "age": ["young", "old"][(i // 2) % 2],
        }
        for i in range(80)
    ]
    path = _write_task(tmp_path, docs, group_field="[gender, age]")
    report = harness.evaluate(model="mock:0", tasks=[str(path)], store=tmp_path / "store")
    names = {row.metric for row in report.scores}
    assert {"group/acc/gender=woman", "group/acc/age=young", "group/acc/gender=woman&age=old"} <= names
    assert "fairness/acc/difference/gender&age" in names and "fairness/acc/worst_intersection" in names
    groups = set(pd.read_parquet(tmp_path / "store" / "samples")["group"])
    assert groups == {
        "gender=woman&age=young",
        "gender=woman&age=old",
        "gender=man&age=young",
        "gender=man&age=old",
    }


@pytest.mark.parametrize("setting", ["[]", "[gender, gender]", "[gender, 3]", "{a: b}", "''"])
def test_a_bad_group_field_setting_is_one_clear_error(tmp_path: Path, setting: str) -> None:
    path = _write_task(tmp_path, [{"q": "a?", "label": 0, "gender": "x"}], group_field=setting)
    with pytest.raises(HarnessError, match="group_field"):
        harness.evaluate(model="mock:0", tasks=[str(path)], store=tmp_path / "store")
