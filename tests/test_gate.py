"""`harness gate`: statistical behaviour on seeded synthetic runs, rules, selectors, reports, bad input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from markdown_it import MarkdownIt

from harness.cli import main
from harness.compare import compare_statistics
from harness.errors import HarnessError
from harness.gate import (
    GateConfig,
    GateRule,
    check_rule,
    load_gate_config,
    parse_gate_config,
    resolve_run,
    run_gate,
)
from harness.gate_command import gate_junit, gate_markdown
from harness.metrics import get_metric
from harness.store import Provenance, ResultStore, RunRecord, SampleRecord, ScoreRecord

T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
JUNIT_XSD = Path(__file__).parent / "fixtures" / "junit_ant.xsd"
ACC = get_metric("acc")
PPL = get_metric("word_perplexity")


def write_run(
    store: ResultStore,
    run_id: str,
    stats: Mapping[tuple[str, str], np.ndarray],
    *,
    experiment: str | None = None,
    step: int | None = None,
    provenance: Mapping[str, object] | None = None,
) -> None:
    """A synthetic run whose scores are the aggregates of its per-document statistics."""
    scores: list[ScoreRecord] = []
    per_doc: dict[tuple[str, int], dict[str, float]] = {}
    for (task, name), matrix in stats.items():
        metric = get_metric(name)
        value = float(metric.aggregate(matrix.sum(axis=0)))
        row = (run_id, task, "1", name, value, None, None, None, len(matrix), metric.higher_is_better)
        scores.append(ScoreRecord(*row, metric.signature()))
        for doc_id, values in enumerate(matrix):
            keys = [f"{name}/{stat}" for stat in metric.statistic_names]
            per_doc.setdefault((task, doc_id), {}).update(zip(keys, map(float, values), strict=True))
    samples = [SampleRecord(run_id, t, d, "p", f"t{d}", None, None, s) for (t, d), s in per_doc.items()]
    created = T0 + timedelta(minutes=len(store.runs()))
    tasks = tuple(sorted({task for task, _ in stats}))
    recorded = Provenance.from_dict(provenance or {})
    run = RunRecord(run_id, created, "mock", f"fp-{run_id}", experiment, step, tasks, recorded)
    store.write_run(run, scores, samples)


def paired_accuracy(
    seed: int, *, n: int = 500, accuracy: float = 0.75, drop: float = 0.0
) -> tuple[np.ndarray, ...]:
    """Baseline and candidate correctness of two checkpoints that agree on most documents.

    Each document flips from right to wrong with probability `down` and from wrong to right with
    `up`; the candidate's true accuracy is `accuracy - drop`. Neighbouring checkpoints disagree on a
    few percent of documents, which is what makes a paired test sensitive.
    """
    rng = np.random.default_rng(seed)
    up = 0.06
    down = (drop + (1 - accuracy) * up) / accuracy
    baseline = rng.random(n) < accuracy
    flips = rng.random(n)
    candidate = np.where(baseline, flips >= down, flips < up)
    return tuple(np.column_stack([x.astype(float), np.ones(n)]) for x in (baseline, candidate))


def paired_perplexity(seed: int, *, n: int = 200, shift: float = 0.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    words = rng.integers(30, 80, size=n).astype(float)
    logprob = -words * rng.uniform(3.0, 5.0, size=n)
    noisy = logprob + rng.normal(0.0, 4.0, size=n) - shift * words
    return np.column_stack([logprob, words]), np.column_stack([noisy, words])


def exact_drop(seed: int, *, n: int = 500, drop_docs: int = 15, churn: int = 7) -> tuple[np.ndarray, ...]:
    """A candidate exactly `drop_docs` / n worse on these documents: it gets `drop_docs + churn` of the
    baseline's right answers wrong and `churn` of its wrong answers right (which ones is seeded)."""
    rng = np.random.default_rng(seed)
    baseline = rng.random(n) < 0.75
    candidate = baseline.copy()
    candidate[rng.choice(np.flatnonzero(baseline), drop_docs + churn, replace=False)] = False
    candidate[rng.choice(np.flatnonzero(~baseline), churn, replace=False)] = True
    return tuple(np.column_stack([x.astype(float), np.ones(n)]) for x in (baseline, candidate))


def gate_store(tmp_path: Path, drop_docs: int, seed: int = 2026) -> ResultStore:
    store = ResultStore(tmp_path / "store")
    base, cand = exact_drop(seed, drop_docs=drop_docs)
    ppl_base, ppl_cand = paired_perplexity(seed)
    write_run(
        store, "base-run", {("qa", "acc"): base, ("prose", "word_perplexity"): ppl_base}, experiment="main"
    )
    write_run(
        store, "cand-run", {("qa", "acc"): cand, ("prose", "word_perplexity"): ppl_cand}, experiment="pr"
    )
    return store


def test_true_three_point_drop_on_500_samples_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = gate_store(tmp_path, drop_docs=15)
    reports = {kind: tmp_path / f"report.{kind}" for kind in ("md", "xml", "json")}
    args = ["gate", "--baseline", "base-run", "--candidate", "cand-run", "--store", str(store.root)]
    args += ["--markdown", str(reports["md"]), "--junit", str(reports["xml"]), "--json", str(reports["json"])]
    assert main(args) == 1
    assert "FAIL    qa     acc" in capsys.readouterr().out
    result = json.loads(reports["json"].read_text())
    (acc,) = [check for check in result["checks"] if check["metric"] == "acc"]
    assert acc["n_shared"] == 500 and not acc["passed"] and acc["test"] == "mcnemar"
    assert acc["drop"] == pytest.approx(0.03) and acc["p_value"] < 0.05
    assert [c["passed"] for c in result["checks"] if c["metric"] != "acc"] == [True]
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    junit = etree.parse(str(reports["xml"]))
    assert schema.validate(junit), schema.error_log
    assert junit.find("testsuite").get("failures") == "1"
    assert len(junit.findall(".//testcase")) == 2 and len(junit.findall(".//failure")) == 1


def test_sampled_three_point_drops_are_usually_caught() -> None:
    # Here 3 points is only the expected drop; about 6 % of documents change answer between the two
    # checkpoints, and the exact McNemar test then has a power of about 0.78 at n = 500.
    rule = GateRule()
    comparisons = [
        compare_statistics(ACC, *paired_accuracy(seed, drop=0.03), resamples=200) for seed in range(40)
    ]
    assert sum(not check_rule(rule, comparison).passed for comparison in comparisons) >= 26


def test_no_true_change_fails_at_most_5_of_100_trials() -> None:
    rule = GateRule()  # any significant drop fails
    acc_failures = ppl_failures = 0
    for seed in range(100):
        acc = compare_statistics(ACC, *paired_accuracy(seed), resamples=200, seed=seed)
        ppl = compare_statistics(PPL, *paired_perplexity(seed), resamples=400, seed=seed)
        acc_failures += not check_rule(rule, acc).passed
        ppl_failures += not check_rule(rule, ppl).passed
    assert acc_failures <= 5
    assert ppl_failures <= 5


def test_significant_drop_within_the_margin_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = gate_store(tmp_path, drop_docs=15)
    json_path = tmp_path / "result.json"
    args = ["gate", "--baseline", "base-run", "--candidate", "cand-run", "--store", str(store.root)]
    assert main([*args, "--max-drop", "0.05", "--json", str(json_path)]) == 0
    (acc,) = [c for c in json.loads(json_path.read_text())["checks"] if c["metric"] == "acc"]
    assert acc["p_value"] < 0.05 and acc["passed"] and acc["reason"].startswith("within margin")
    assert "passed" in capsys.readouterr().out


def test_lower_is_better_metrics_gate_on_a_rise() -> None:
    base, cand = paired_perplexity(1, shift=0.05)  # candidate loses 0.05 nats per word
    comparison = compare_statistics(PPL, base, cand, resamples=500)
    assert comparison.difference > 0 and comparison.p_value < 0.01
    assert not check_rule(GateRule(max_relative_drop=0.02), comparison).passed
    assert check_rule(GateRule(max_relative_drop=0.10), comparison).passed
    improved = compare_statistics(PPL, cand, base, resamples=500)
    assert improved.drop < 0 and check_rule(GateRule(), improved).passed


def test_insignificant_drop_passes_unless_significance_is_not_required() -> None:
    base, cand = paired_accuracy(0, n=40, drop=0.03)
    comparison = compare_statistics(ACC, base, cand, resamples=200)
    assert comparison.drop > 0 and comparison.p_value > 0.05
    assert check_rule(GateRule(), comparison).passed
    assert not check_rule(GateRule(require_significance=False), comparison).passed
    too_few = check_rule(GateRule(min_samples=100), comparison)
    assert not too_few.passed and "only 40 shared samples" in too_few.reason


def test_rules_expand_globs_and_the_last_match_wins(tmp_path: Path) -> None:
    store = gate_store(tmp_path, drop_docs=15)
    config = parse_gate_config(
        {
            "defaults": {"min_samples": 10},
            "rules": [
                {"task": "*", "metric": "*"},
                {"task": "q?", "metric": "acc", "max_drop": 0.1, "name": "qa"},
            ],
        }
    )
    result = run_gate(store, "base-run", "cand-run", config, resamples=200)
    assert result.passed and len(result.checks) == 2
    acc = next(check for check in result.checks if check.metric == "acc")
    assert acc.rule.max_drop == 0.1 and acc.rule.min_samples == 10 and acc.rule.name == "qa"


def test_selectors(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    for index, (experiment, step, value) in enumerate(
        [("sft", 100, 0.5), ("sft", 200, 0.8), ("sft", 300, 0.6), ("dpo", 5, 0.1)]
    ):
        correct = np.arange(10) < value * 10
        stats = {("qa", "acc"): np.column_stack([correct, np.ones(10)]).astype(float)}
        tags = {"tags": ["release"]} if index == 0 else {}
        write_run(store, f"2026-run{index}", stats, experiment=experiment, step=step, provenance=tags)
    assert resolve_run(store, "latest") == "2026-run3"
    assert resolve_run(store, "latest:sft") == "2026-run2"
    assert resolve_run(store, "sft@200") == "2026-run1"
    assert resolve_run(store, "best:sft:qa/acc") == "2026-run1"
    assert resolve_run(store, "tag:release") == "2026-run0"
    assert resolve_run(store, "tag:dpo") == "2026-run3"
    assert resolve_run(store, "2026-run2") == "2026-run2"
    for selector, message in [
        ("2026-run", "matches 4 runs"),
        ("nope", "unknown run 'nope'"),
        ("latest:none", "no run"),
        ("sft@x", "whole number"),
        ("best:sft", "best:EXPERIMENT:TASK/METRIC"),
        ("best:sft:qa/bleu", "no run of experiment"),
        ("newest:sft", "unknown run selector"),
    ]:
        with pytest.raises(HarnessError, match=message):
            resolve_run(store, selector)


BAD_CONFIGS = [
    ("rules: [{task: nope, metric: acc}]", "names task 'nope', which neither run has"),
    ("rules: [{task: qa, metric: bleu}]", "names metric 'bleu', which neither run has"),
    ("rules: [{task: 'z*', metric: '*'}]", "matches no task and metric"),
    ("rules: [{task: qa, metric: acc, max_drop: -1}]", "max_drop must be a number"),
    ("rules: [{task: qa, metric: acc, max_drop: 0.1, max_relative_drop: 0.1}]", "not both"),
    ("rules: [{task: qa, metric: acc, alpha: 2}]", "alpha must be between"),
    ("rules: [{task: qa, metric: acc, min_samples: 0.5}]", "min_samples must be a whole number"),
    ("rules: [{task: qa, metric: acc, require_significance: maybe}]", "true or false"),
    ("rules: [{task: qa, metric: acc, margin: 1}]", "unknown key 'margin'"),
    ("rules: [{metric: acc}]", "missing 'task'"),
    ("rules: {task: qa}", "'rules' must be a list"),
    ("gates: []", "unknown key 'gates'"),
    ("rules: [{task: qa, metric: acc", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_gate_configs_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    store = gate_store(tmp_path, drop_docs=0)
    config = tmp_path / "gates.yaml"
    config.write_text(text)
    junit = tmp_path / "out.xml"
    args = ["gate", "--baseline", "base-run", "--candidate", "cand-run", "--store", str(store.root)]
    assert main([*args, "--config", str(config), "--junit", str(junit)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not junit.exists()


@pytest.mark.parametrize(
    ("baseline", "candidate", "message"),
    [("missing", "cand-run", "unknown run 'missing'"), ("base-run", "base-run", "the same run")],
)
def test_bad_selectors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], baseline: str, candidate: str, message: str
) -> None:
    store = gate_store(tmp_path, drop_docs=0)
    assert main(["gate", "--baseline", baseline, "--candidate", candidate, "--store", str(store.root)]) == 2
    assert message in capsys.readouterr().err


def test_task_in_one_run_only_is_refused(tmp_path: Path) -> None:
    store = gate_store(tmp_path, drop_docs=0)
    base, _ = paired_accuracy(0)
    write_run(store, "other", {("qa", "acc"): base})
    config = GateConfig(rules=(GateRule(task="prose", metric="word_perplexity"),))
    with pytest.raises(HarnessError, match="the candidate run has no score for prose/word_perplexity"):
        run_gate(store, "base-run", "other", config)


def test_markdown_report_renders_a_table(tmp_path: Path) -> None:
    result = run_gate(gate_store(tmp_path, drop_docs=15), "base-run", "latest:pr", resamples=200)
    markdown = gate_markdown(result)
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    types = [token.type for token in tokens]
    assert types.count("table_open") == 1
    assert types.count("tr_open") == 1 + len(result.checks)
    assert types.count("th_open") == types.count("td_open") // len(result.checks)
    cells = [token.content for token in tokens if token.type == "inline"]
    assert "❌" in cells and "acc" in cells and "`qa/acc`" not in cells
    assert any(token.type == "bullet_list_open" for token in tokens)  # the regressions list
    xml = gate_junit(result, timestamp=T0, hostname="ci")
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    assert schema.validate(etree.fromstring(xml.encode())), schema.error_log
    assert 'timestamp="2026-11-21T12:00:00"' in xml


def test_example_config_parses() -> None:
    config = load_gate_config(Path(__file__).parent.parent / "examples" / "gates.yaml")
    assert config.defaults.min_samples == 50 and len(config.rules) == 4
    assert config.rules[2].max_relative_drop == 0.03 and config.rules[2].max_drop is None


def test_gate_on_runs_with_fairness_rows_judges_task_metrics_only(tmp_path: Path) -> None:
    import subprocess
    import sys

    import harness

    store = tmp_path / "store"
    base = harness.evaluate("mock:0", ["harness_facts_qa"], limit=30, store=store, experiment="base")
    cand = harness.evaluate("mock:0", ["harness_facts_qa"], limit=30, store=store, experiment="cand")
    assert any(s.metric.startswith("group/") for s in base.scores)
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--store", str(store),
         "--baseline", base.run_id, "--candidate", cand.run_id],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "group/" not in result.stdout


def test_gate_selects_the_baseline_by_a_tag_given_to_harness_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's CI flow: `harness run --tag baseline` on main, then `harness gate --baseline tag:baseline`."""
    store = str(tmp_path / "store")
    common = ["--model", "mock:0", "--tasks", "harness_reading_mc", "--limit", "20", "--store", store]
    assert (
        main(["run", *common, "--experiment", "main", "--tag", "baseline", "--tag", "nightly", "--quiet"])
        == 0
    )
    assert main(["run", *common, "--experiment", "main", "--quiet"]) == 0  # newer, untagged
    assert main(["run", *common, "--experiment", "pr-42", "--quiet"]) == 0
    runs = ResultStore(store).run_records()
    assert [run.tags for run in runs] == [("baseline", "nightly"), (), ()]
    assert json.loads(ResultStore(store).runs()["provenance"].iloc[0])["tags"] == ["baseline", "nightly"]
    assert resolve_run(ResultStore(store), "tag:baseline") == runs[0].run_id
    assert resolve_run(ResultStore(store), "tag:nightly") == runs[0].run_id
    assert resolve_run(ResultStore(store), "tag:pr-42") == runs[2].run_id  # experiments still count as tags
    capsys.readouterr()
    json_path = tmp_path / "gate.json"
    code = main(
        ["gate", "--store", store, "--baseline", "tag:baseline", "--candidate", "latest:pr-42",
         "--json", str(json_path)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(json_path.read_text())
    assert report["baseline"] == {"selector": "tag:baseline", "run_id": runs[0].run_id}
    assert report["candidate"]["run_id"] == runs[2].run_id
    assert main(["gate", "--store", store, "--baseline", "tag:nope", "--candidate", "latest"]) == 2
    assert "no run" in capsys.readouterr().err
    assert main(["run", *common, "--tag", " ", "--quiet"]) == 2
    assert "non-empty name" in capsys.readouterr().err and len(ResultStore(store).runs()) == 3
