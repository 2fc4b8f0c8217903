"""Bad flags and bad files for every subcommand: exit 2, exactly one `harness: error:` line, no traceback,
and the store's earlier runs byte for byte as they were.

Commands run in-process (`harness.cli.main`) on a copy of one small store built per module. Each case
names its arguments with `{store}` (that store), `{inp}` (a folder of malformed input files) and
`{run}` (the newest run's id), and the fragments its one error line must contain.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.store import ResultStore, resolve_run
from tests.test_bad_input import assert_one_error, cli, mock_runs, snapshot
from tests.test_bad_input import store as store  # a copy of this module's `built_store`

EXPERIMENTS = (("base", 100), ("cand", 200), ("other", 300))
HUGE = "9" * 40  # past any machine integer
TONE = ["--model", "mock:0", "--tasks", "harness_tone", "--limit", "10", "--quiet", "--no-cache"]
QA = ["--model", "mock:0", "--tasks", "harness_facts_qa", "--limit", "10", "--quiet", "--no-cache"]
GATE = ["gate", "--baseline", "latest:base", "--candidate", "latest:cand", "--store", "{store}"]
COMPARE = ["compare", "latest:base", "latest:cand", "--store", "{store}", "--resamples", "50"]
SCORE = ["score", "--predictions", "{inp}/ok.jsonl", "--metrics", "token_f1", "--store", "{store}"]
CAMPAIGN = ["ratings", "campaign", "c1", "--store", "{store}", "--runs", "latest:base", "latest:cand"]


@pytest.fixture(scope="module")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    """Three mock runs (experiments base@100, cand@200, other@300; the first tagged `nightly`)."""
    root = tmp_path_factory.mktemp("bad-cli") / "store"
    runs = [
        {"experiment": experiment, "step": step, "tags": ["nightly"] if seed == 0 else []}
        for seed, (experiment, step) in enumerate(EXPERIMENTS)
    ]
    return root, mock_runs(root, runs)


def _inputs(folder: Path) -> Path:
    """Every malformed file the cases hand to a command."""
    folder.mkdir()
    files: dict[str, bytes] = {
        "ok.jsonl": b'{"prediction": "a cat", "reference": "a cat"}\n',
        "empty.jsonl": b"",
        "blank.jsonl": b"\n\n   \n",
        "broken.jsonl": b'{"prediction": "a"\n',
        "array-line.jsonl": b"[1, 2]\n",
        "latin1.jsonl": b'{"prediction": "caf\xe9", "reference": "x"}\n',
        "bom.jsonl": b'\xef\xbb\xbf{"prediction": "a", "reference": "a"}\n',
        "object.json": b'{"prediction": "a"}',
        "truncated.json": b'[{"prediction": "a", "reference": "a"},',
        "number-prediction.jsonl": b'{"prediction": 5, "reference": "a"}\n',
        "null-prediction.jsonl": b'{"prediction": null, "reference": "a"}\n',
        "nested-prediction.jsonl": b'{"prediction": {"text": "a"}, "reference": "a"}\n',
        "no-prediction.jsonl": b'{"text": "a", "reference": "a"}\n',
        "header-only.csv": b"prediction,reference\n",
        "not.parquet": b"PAR1 this is not parquet",
        "binary.txt": b"\xff\xfe\x00\x01",
        "unclosed.yaml": b"rules: [unclosed\n",
        "latin1.yaml": b"rules: caf\xe9\n",
        "deep.yaml": b"a:" + b" [" * 5000 + b"]" * 5000,
        "list.yaml": b"- 1\n- 2\n",
        "scalar.yaml": b"just words\n",
        "tabs.yaml": b"rules:\n\t- task: x\n",
        "bad-rule.yaml": b"rules:\n  - {task: harness_tone, metric: exact_match, max_drop: lots}\n",
        "rule-no-task.yaml": b"rules:\n  - {metric: exact_match}\n",
        "rule-unknown-key.yaml": b"rules:\n  - {task: harness_tone, metric: exact_match, max_dorp: 1}\n",
        "rule-alpha.yaml": b"rules:\n  - {task: harness_tone, metric: exact_match, alpha: 2}\n",
        "rubric-no-criteria.yaml": b"name: r\n",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    (folder / "a-folder").mkdir()
    return folder


# name: (arguments, fragments of the one error line)
CASES: dict[str, tuple[list[str], list[str]]] = {
    # -- harness run --------------------------------------------------------------------------------
    "run unknown flag": (["run", "--store", "{store}", *TONE, "--modle", "x"], ["--modle"]),
    "run abbreviated --limit": (["run", "--store", "{store}", *TONE, "--lim", "2"], ["--lim"]),
    "run limit zero": (["run", "--store", "{store}", *TONE, "--limit", "0"], ["--limit"]),
    "run limit negative": (["run", "--store", "{store}", *TONE, "--limit", "-3"], ["--limit"]),
    "run limit text": (["run", "--store", "{store}", *TONE, "--limit", "ten"], ["--limit", "ten"]),
    "run step huge": (["run", "--store", "{store}", *TONE, "--step", HUGE], ["--step", HUGE]),
    "run step negative": (["run", "--store", "{store}", *TONE, "--step", "-1"], ["--step", "-1"]),
    "run step float": (["run", "--store", "{store}", *TONE, "--step", "1.5"], ["--step", "1.5"]),
    "run seed huge": (["run", "--store", "{store}", *TONE, "--seed", HUGE], ["--seed"]),
    "run resamples huge": (
        ["run", "--store", "{store}", *TONE, "--bootstrap-resamples", HUGE],
        ["--bootstrap-resamples", "1,000,000"],
    ),
    "run resamples negative": (
        ["run", "--store", "{store}", *TONE, "--bootstrap-resamples", "-1"],
        ["--bootstrap-resamples"],
    ),
    "run num-fewshot negative": (
        ["run", "--store", "{store}", *TONE, "--num-fewshot", "-1"],
        ["--num-fewshot"],
    ),
    "run num-fewshot too many": (
        ["run", "--store", "{store}", *TONE, "--num-fewshot", "100000"],
        ["too few documents for 100000-shot"],
    ),
    "run batch-size huge": (["run", "--store", "{store}", *TONE, "--batch-size", "-0"], ["--batch-size"]),
    "run format unknown": (["run", "--store", "{store}", *TONE, "--format", "xml"], ["--format", "xml"]),
    "run no tasks": (["run", "--store", "{store}", *TONE, "--tasks", ","], ["no tasks"]),
    "run unknown task": (["run", "--store", "{store}", *TONE, "--tasks", "harness_tonne"], ["harness_tonne"]),
    "run unicode task": (["run", "--store", "{store}", *TONE, "--tasks", "tâche_✓"], ["tâche_✓"]),
    "run task path traversal": (
        ["run", "--store", "{store}", *TONE, "--tasks", "../../../../etc/passwd"],
        ["a task file must be a YAML mapping"],
    ),
    "run task file is a folder": (["run", "--store", "{store}", *TONE, "--tasks", "{inp}/a-folder"], []),
    "run task file unclosed": (
        ["run", "--store", "{store}", *TONE, "--tasks", "{inp}/unclosed.yaml"],
        ["unclosed.yaml", "malformed YAML"],
    ),
    "run task file latin1": (
        ["run", "--store", "{store}", *TONE, "--tasks", "{inp}/latin1.yaml"],
        ["not UTF-8 text"],
    ),
    "run task file deep": (["run", "--store", "{store}", *TONE, "--tasks", "{inp}/deep.yaml"], ["deep.yaml"]),
    "run task file a list": (
        ["run", "--store", "{store}", *TONE, "--tasks", "{inp}/list.yaml"],
        ["must be a YAML mapping"],
    ),
    "run task file tabs": (["run", "--store", "{store}", *TONE, "--tasks", "{inp}/tabs.yaml"], ["tabs.yaml"]),
    "run include-path missing": (
        ["run", "--store", "{store}", *TONE, "--include-path", "{inp}/nowhere"],
        ["--include-path", "not a folder"],
    ),
    "run include-path a file": (
        ["run", "--store", "{store}", *TONE, "--include-path", "{inp}/ok.jsonl"],
        ["not a folder"],
    ),
    "run unknown adapter": (["run", "--store", "{store}", *TONE, "--model", "mok:0"], ["mok"]),
    "run model path missing": (
        ["run", "--store", "{store}", *TONE, "--model", "hf:{inp}/nowhere"],
        ["nowhere"],
    ),
    "run model path traversal": (
        ["run", "--store", "{store}", *TONE, "--model", "hf:../../../../etc"],
        ["not a transformers model folder"],
    ),
    "run model-args without =": (["run", "--store", "{store}", *TONE, "--model-args", "x"], ["--model-args"]),
    "run model-args without key": (
        ["run", "--store", "{store}", *TONE, "--model-args", "=1"],
        ["--model-args"],
    ),
    "run gen-kwargs without =": (["run", "--store", "{store}", *TONE, "--gen-kwargs", "x"], ["--gen-kwargs"]),
    "run gen-kwargs text temperature": (
        ["run", "--store", "{store}", *QA, "--gen-kwargs", "temperature=hot"],
        ["--gen-kwargs", "temperature", "hot"],
    ),
    "run gen-kwargs negative tokens": (
        ["run", "--store", "{store}", *QA, "--gen-kwargs", "max_gen_toks=-1"],
        ["--gen-kwargs", "max_gen_toks"],
    ),
    "run gen-kwargs huge tokens": (
        ["run", "--store", "{store}", *QA, "--gen-kwargs", f"max_gen_toks={HUGE}"],
        ["--gen-kwargs", "1,000,000"],
    ),
    "run gen-kwargs unknown key": (
        ["run", "--store", "{store}", *QA, "--gen-kwargs", "max_tokens=5"],
        ["--gen-kwargs", "max_tokens"],
    ),
    "run multiturn without chat": (
        ["run", "--store", "{store}", *TONE, "--fewshot-as-multiturn"],
        ["--apply-chat-template"],
    ),
    "run store is a file": (["run", "--store", "{inp}/ok.jsonl", *TONE], ["is a file"]),
    "run store under a file": (["run", "--store", "{inp}/ok.jsonl/store", *TONE], ["ok.jsonl"]),
    # -- harness scores -----------------------------------------------------------------------------
    "scores unknown run": (["scores", "--store", "{store}", "--run", "nope"], ["unknown run 'nope'"]),
    "scores run traversal": (["scores", "--store", "{store}", "--run", "../../etc/passwd"], ["unknown run"]),
    "scores run unicode": (["scores", "--store", "{store}", "--run", "ラン"], ["unknown run 'ラン'"]),
    "scores ambiguous prefix": (["scores", "--store", "{store}", "--run", "2"], ["matches 3 runs"]),
    "scores latest of no experiment": (
        ["scores", "--store", "{store}", "--run", "latest:nope"],
        ["latest:nope"],
    ),
    "scores step not a number": (["scores", "--store", "{store}", "--run", "base@x"], ["@STEP"]),
    "scores no run at step": (["scores", "--store", "{store}", "--run", "base@999"], ["base@999"]),
    "scores unknown tag": (["scores", "--store", "{store}", "--run", "tag:weekly"], ["tag:weekly"]),
    "scores unknown selector kind": (["scores", "--store", "{store}", "--run", "first:base"], ["first:base"]),
    "scores bad best selector": (["scores", "--store", "{store}", "--run", "best:base"], ["best:EXPERIMENT"]),
    "scores missing store": (["scores", "--store", "{inp}/nowhere"], ["no results store"]),
    "scores store is a file": (["scores", "--store", "{inp}/ok.jsonl"], ["no results store"]),
    "scores format unknown": (["scores", "--store", "{store}", "--format", "xml"], ["--format"]),
    "scores extra argument": (["scores", "--store", "{store}", "extra"], ["extra"]),
    "scores run without value": (["scores", "--store", "{store}", "--run"], ["--run"]),
    # -- harness compare ----------------------------------------------------------------------------
    "compare one run": (["compare", "latest:base", "--store", "{store}"], ["candidate"]),
    "compare unknown run": (["compare", "latest:base", "nope", "--store", "{store}"], ["unknown run 'nope'"]),
    "compare resamples huge": ([*COMPARE, "--resamples", HUGE], ["--resamples", "1,000,000"]),
    "compare resamples one": ([*COMPARE, "--resamples", "1"], ["--resamples"]),
    "compare confidence nan": ([*COMPARE, "--confidence", "nan"], ["--confidence", "nan"]),
    "compare confidence above 1": ([*COMPARE, "--confidence", "2"], ["confidence must be between 0 and 1"]),
    "compare unknown task": ([*COMPARE, "--tasks", "nope"], ["no task 'nope'"]),
    "compare tasks names none": ([*COMPARE, "--tasks", ","], ["--tasks names no task"]),
    "compare format unknown": ([*COMPARE, "--format", "xml"], ["--format"]),
    "compare missing store": (["compare", "a", "b", "--store", "{inp}/nowhere"], ["no results store"]),
    # -- harness gate -------------------------------------------------------------------------------
    "gate no candidate": (["gate", "--baseline", "latest:base", "--store", "{store}"], ["--candidate"]),
    "gate max-drop text": ([*GATE, "--max-drop", "abc"], ["--max-drop", "abc"]),
    "gate max-drop nan": ([*GATE, "--max-drop", "nan"], ["--max-drop", "nan"]),
    "gate max-drop infinite": ([*GATE, "--max-drop", "inf"], ["--max-drop", "inf"]),
    "gate max-drop negative": ([*GATE, "--max-drop", "-1"], ["--max-drop"]),
    "gate relative drop nan": ([*GATE, "--max-relative-drop", "nan"], ["--max-relative-drop"]),
    "gate alpha nan": ([*GATE, "--alpha", "nan"], ["--alpha"]),
    "gate alpha above 1": ([*GATE, "--alpha", "1.5"], ["--alpha"]),
    "gate min-samples zero": ([*GATE, "--min-samples", "0"], ["--min-samples"]),
    "gate resamples huge": ([*GATE, "--resamples", HUGE], ["--resamples"]),
    "gate config missing": ([*GATE, "--config", "{inp}/nowhere.yaml"], ["cannot read gate config"]),
    "gate config a folder": ([*GATE, "--config", "{inp}/a-folder"], ["gate config"]),
    "gate config unclosed": ([*GATE, "--config", "{inp}/unclosed.yaml"], ["not valid YAML"]),
    "gate config latin1": ([*GATE, "--config", "{inp}/latin1.yaml"], ["not UTF-8 text (byte 10)"]),
    "gate config deep": ([*GATE, "--config", "{inp}/deep.yaml"], ["nested too deeply"]),
    "gate config a list": ([*GATE, "--config", "{inp}/list.yaml"], ["expected a mapping"]),
    "gate config a scalar": ([*GATE, "--config", "{inp}/scalar.yaml"], ["expected a mapping"]),
    "gate config tabs": ([*GATE, "--config", "{inp}/tabs.yaml"], ["not valid YAML"]),
    "gate rule text drop": ([*GATE, "--config", "{inp}/bad-rule.yaml"], ["rule 1", "max_drop", "lots"]),
    "gate rule no task": ([*GATE, "--config", "{inp}/rule-no-task.yaml"], ["rule 1", "task"]),
    "gate rule unknown key": ([*GATE, "--config", "{inp}/rule-unknown-key.yaml"], ["max_dorp"]),
    "gate rule alpha": ([*GATE, "--config", "{inp}/rule-alpha.yaml"], ["alpha must be between"]),
    "gate report in a missing folder": (
        [*GATE, "--max-drop", "1", "--markdown", "/proc/no-such-folder/report.md"],
        ["cannot write the gate report", "report.md"],
    ),
    "gate report onto a folder": (
        [*GATE, "--max-drop", "1", "--json", "{inp}/a-folder"],
        ["cannot write the gate report", "Is a directory"],
    ),
    # -- harness score ------------------------------------------------------------------------------
    "score missing file": (
        ["score", "--predictions", "{inp}/nowhere.jsonl", "--metrics", "bleu"],
        ["nowhere"],
    ),
    "score a folder": (["score", "--predictions", "{inp}/a-folder", "--metrics", "bleu"], ["a-folder"]),
    "score empty file": ([*SCORE[:2], "{inp}/empty.jsonl", *SCORE[3:]], ["no rows"]),
    "score blank lines": ([*SCORE[:2], "{inp}/blank.jsonl", *SCORE[3:]], ["blank.jsonl"]),
    "score broken json line": ([*SCORE[:2], "{inp}/broken.jsonl", *SCORE[3:]], ["line 1", "not valid JSON"]),
    "score line not an object": ([*SCORE[:2], "{inp}/array-line.jsonl", *SCORE[3:]], ["row 1", "object"]),
    "score latin1": ([*SCORE[:2], "{inp}/latin1.jsonl", *SCORE[3:]], ["latin1.jsonl", "utf-8"]),
    "score json object not list": ([*SCORE[:2], "{inp}/object.json", *SCORE[3:]], ["list of objects"]),
    "score truncated json": ([*SCORE[:2], "{inp}/truncated.json", *SCORE[3:]], ["truncated.json"]),
    "score number prediction": ([*SCORE[:2], "{inp}/number-prediction.jsonl", *SCORE[3:]], ["must be text"]),
    "score null prediction": ([*SCORE[:2], "{inp}/null-prediction.jsonl", *SCORE[3:]], ["got null"]),
    "score nested prediction": ([*SCORE[:2], "{inp}/nested-prediction.jsonl", *SCORE[3:]], ["must be text"]),
    "score no prediction field": ([*SCORE[:2], "{inp}/no-prediction.jsonl", *SCORE[3:]], ["no field"]),
    "score header-only csv": ([*SCORE[:2], "{inp}/header-only.csv", *SCORE[3:]], ["header-only.csv"]),
    "score not parquet": ([*SCORE[:2], "{inp}/not.parquet", *SCORE[3:]], ["not.parquet"]),
    "score binary text": ([*SCORE[:2], "{inp}/binary.txt", *SCORE[3:]], ["binary.txt"]),
    "score unknown metric": ([*SCORE[:4], "blue", *SCORE[5:]], ["unknown metric 'blue'"]),
    "score no metric": ([*SCORE[:4], ",", *SCORE[5:]], ["names no metric"]),
    "score metric-args shape": ([*SCORE, "--metric-args", "x"], ["METRIC.KEY=VALUE"]),
    "score metric-args unknown key": ([*SCORE, "--metric-args", "token_f1.nope=1"], ["nope"]),
    "score metric-args other metric": ([*SCORE, "--metric-args", "rouge.x=1"], ["not in --metrics"]),
    "score missing references": ([*SCORE, "--references", "{inp}/nowhere.txt"], ["nowhere.txt"]),
    "score step huge": ([*SCORE, "--step", HUGE], ["--step"]),
    "score resamples huge": ([*SCORE, "--bootstrap-resamples", HUGE], ["--bootstrap-resamples"]),
    "score seed negative": ([*SCORE, "--seed", "-5"], ["--seed"]),
    "score label field missing": ([*SCORE, "--label-field", "label"], ["no field 'label'"]),
    "score group field missing": ([*SCORE, "--group-field", "group"], ["no field 'group'"]),
    "score --predictions missing": (["score", "--metrics", "bleu"], ["--predictions"]),
    # -- harness tasks ------------------------------------------------------------------------------
    "tasks include-path missing": (["tasks", "--include-path", "{inp}/nowhere"], ["not a folder"]),
    "tasks include-path a file": (["tasks", "--include-path", "{inp}/ok.jsonl"], ["not a folder"]),
    "tasks format unknown": (["tasks", "--format", "csv"], ["--format"]),
    "tasks abbreviated flag": (["tasks", "--include", "{inp}"], ["--include"]),
    # -- harness store check ------------------------------------------------------------------------
    "store check missing store": (["store", "check", "--store", "{inp}/nowhere"], ["no results store"]),
    "store check a file": (["store", "check", "--store", "{inp}/ok.jsonl"], ["no results store"]),
    "store check not a store": (["store", "check", "--store", "{inp}"], ["not a harness results store"]),
    "store unknown action": (["store", "fix", "--store", "{store}"], ["fix"]),
    # -- harness watch ------------------------------------------------------------------------------
    "watch missing folder": (["watch", "{inp}/nowhere", "--once", "--store", "{store}"], ["not a folder"]),
    "watch a file": (["watch", "{inp}/ok.jsonl", "--once", "--store", "{store}"], ["not a folder"]),
    "watch poll negative": (["watch", "{inp}", "--once", "--poll-seconds", "-1"], ["--poll-seconds"]),
    "watch poll zero": (["watch", "{inp}", "--once", "--poll-seconds", "0"], ["--poll-seconds"]),
    "watch poll nan": (["watch", "{inp}", "--once", "--poll-seconds", "nan"], ["--poll-seconds"]),
    "watch settle negative": (["watch", "{inp}", "--once", "--settle-seconds", "-1"], ["--settle-seconds"]),
    "watch tasks names none": (["watch", "{inp}", "--once", "--tasks", " , "], ["--tasks names no task"]),
    "watch unknown adapter": (["watch", "{inp}", "--once", "--adapter", "hff"], ["hff"]),
    "watch max-checkpoints zero": (
        ["watch", "{inp}", "--once", "--max-checkpoints", "0"],
        ["--max-checkpoints"],
    ),
    "watch limit zero": (["watch", "{inp}", "--once", "--limit", "0"], ["--limit"]),
    # -- harness ratings ----------------------------------------------------------------------------
    "ratings no action": (["ratings"], ["required"]),
    "ratings campaign name traversal": (
        ["ratings", "campaign", "../../x", "--mode", "pairwise", "--store", "{store}", "--runs", "a", "b"],
        ["campaign name '../../x'"],
    ),
    "ratings campaign unknown mode": ([*CAMPAIGN, "--mode", "triple"], ["--mode"]),
    "ratings campaign one run": (
        ["ratings", "campaign", "c1", "--mode", "pairwise", "--store", "{store}", "--runs", "latest:base"],
        ["two or more"],
    ),
    "ratings campaign unknown run": ([*CAMPAIGN, "nope", "--mode", "pairwise"], ["unknown run 'nope'"]),
    "ratings campaign overlap zero": ([*CAMPAIGN, "--mode", "pairwise", "--overlap", "0"], ["overlap"]),
    "ratings campaign rubric unclosed": (
        [*CAMPAIGN, "--mode", "rubric", "--rubric", "{inp}/unclosed.yaml"],
        ["rubric", "not valid YAML"],
    ),
    "ratings campaign rubric latin1": (
        [*CAMPAIGN, "--mode", "rubric", "--rubric", "{inp}/latin1.yaml"],
        ["rubric", "not UTF-8 text"],
    ),
    "ratings campaign rubric deep": (
        [*CAMPAIGN, "--mode", "rubric", "--rubric", "{inp}/deep.yaml"],
        ["rubric", "nested too deeply"],
    ),
    "ratings campaign rubric a list": (
        [*CAMPAIGN, "--mode", "rubric", "--rubric", "{inp}/list.yaml"],
        ["rubric", "mapping"],
    ),
    "ratings campaign gold deep": (
        [*CAMPAIGN, "--mode", "pairwise", "--gold", "{inp}/deep.yaml"],
        ["gold", "nested too deeply"],
    ),
    "ratings summary seed negative": (["ratings", "summary", "c1", "--seed", "-1"], ["--seed"]),
    "ratings list missing store": (
        ["ratings", "list", "--store", "{inp}/no-store-here"],
        ["no results store", "no-store-here"],
    ),
    "leaderboard ratings-db missing": (
        ["leaderboard", "--store", "{store}", "--ratings-db", "{inp}/nope.sqlite"],
        ["--ratings-db", "nope.sqlite"],
    ),
    "ratings list db is a folder": (["ratings", "list", "--db", "{inp}/a-folder"], ["a-folder", "folder"]),
    # -- harness leaderboard (refused before Streamlit starts) --------------------------------------
    "leaderboard port text": (["leaderboard", "--store", "{store}", "--port", "http"], ["--port"]),
    "leaderboard port zero": (["leaderboard", "--store", "{store}", "--port", "0"], ["--port"]),
    "leaderboard port too big": (["leaderboard", "--store", "{store}", "--port", "70000"], ["--port"]),
    "leaderboard store is a file": (["leaderboard", "--store", "{inp}/ok.jsonl"], ["is a file"]),
    "leaderboard blank address": (["leaderboard", "--store", "{store}", "--address", " "], ["--address"]),
    "leaderboard unknown flag": (["leaderboard", "--store", "{store}", "--prot", "1"], ["--prot"]),
    # -- the top level ------------------------------------------------------------------------------
    "no command": ([], ["required"]),
    "unknown command": (["evaluate", "--store", "{store}"], ["evaluate"]),
}


class _StreamlitStarted(Exception):
    """A leaderboard case got as far as starting Streamlit: its bad input was not refused."""


@pytest.mark.parametrize("case", list(CASES))
def test_bad_flags_and_files_are_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    store: tuple[Path, tuple[str, ...]],
    case: str,
) -> None:
    root, ids = store
    inputs = _inputs(tmp_path / "in")
    arguments, fragments = CASES[case]
    values = {"store": str(root), "inp": str(inputs), "run": ids[-1]}
    monkeypatch.setenv("HARNESS_STORE", str(root))  # commands without --store still use the copy

    def refuse_exec(*args: object) -> None:
        raise _StreamlitStarted(args)

    monkeypatch.setattr(os, "execv", refuse_exec)
    before = snapshot(root)
    inputs_before = snapshot(inputs)
    result = cli(capsys, *(argument.format(**values) for argument in arguments))
    assert_one_error(result, *(fragment.format(**values) for fragment in fragments))
    assert snapshot(root) == before  # the earlier runs are intact and nothing was added
    assert snapshot(inputs) == inputs_before
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*.tmp"))


# -- one selector grammar ---------------------------------------------------------------------------

SELECTORS = {
    "latest": 2,
    "latest:base": 0,
    "latest:cand": 1,
    "base@100": 0,
    "other@300": 2,
    "tag:nightly": 0,
    "best:cand:harness_tone/acc": 1,
}


@pytest.mark.parametrize("selector", [*SELECTORS, "id", "id-prefix"])
def test_scores_run_takes_the_selectors_compare_takes(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, tuple[str, ...]], selector: str
) -> None:
    root, ids = store
    if selector in SELECTORS:
        argument, expected = selector, ids[SELECTORS[selector]]
    else:
        expected = ids[1]
        argument = expected if selector == "id" else expected[: len(expected) - 3]
    result = cli(capsys, "scores", "--store", str(root), "--run", argument, "--format", "json")
    assert result.code == 0 and result.err == "", result
    assert {row["run_id"] for row in json.loads(result.out)} == {expected}
    # compare, gate and rating campaigns resolve selectors with the same function.
    assert resolve_run(ResultStore(root), argument) == expected
