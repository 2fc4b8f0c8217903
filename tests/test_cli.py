"""The `harness` command line, run as a real subprocess against real stores in tmp_path.

Project rule for bad input: exit code 2, exactly one non-empty line on stderr, no traceback (unless
--debug), and nothing written anywhere: a store that existed is byte-for-byte unchanged and a store
that did not exist is not created.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import harness

SCORE_KEYS = ["run_id", "model", "task", "metric", "value", "stderr", "ci_low", "ci_high", "n"]
# JSON and CSV also carry each row's response filter and its lm-eval results key (`acc,none`).
MACHINE_KEYS = [*SCORE_KEYS, "filter", "lm_eval_key"]
BUILTIN_TASKS = ("harness_prose_ppl", "harness_reading_mc", "harness_tone", "harness_facts_qa")
MODEL_REQUESTS = re.compile(r"(\d+) run on the model")
TIMEOUT_S = 300

# A small multiple-choice task in the lm-eval YAML subset; `__DATA__`, `__NAME__` and `__EXTRA__`
# are filled in per test.
TASK_YAML = """\
task: __NAME__
dataset_path: json
dataset_kwargs:
  data_files:
    test: __DATA__
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: ["yes", "no"]
doc_to_target: label
__EXTRA__"""
DOCS = [{"question": f"Is statement number {i} true?", "label": i % 2} for i in range(6)]


def _task_yaml(name: str = "cli_yes_no", data: str = "data.jsonl", extra: str = "") -> str:
    return TASK_YAML.replace("__NAME__", name).replace("__DATA__", data).replace("__EXTRA__", extra)


def _write_task(folder: Path, name: str = "cli_yes_no", extra: str = "", data: str = "data.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in DOCS), encoding="utf-8")
    path = folder / f"{name}.yaml"
    path.write_text(_task_yaml(name, data, extra), encoding="utf-8")
    return path


def harness_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Anything that falls back to the default store lands in cwd (a tmp dir), never in the repo.
    env["HARNESS_STORE"] = str(cwd / "default_store")
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under root; {} when root does not exist."""
    if not root.exists():
        return {}
    if root.is_file():
        return {".": root.read_bytes()}
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        found[str(path.relative_to(root))] = path.read_bytes() if path.is_file() else None
    return found


def _stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def _model_requests(stderr: str) -> int:
    found = MODEL_REQUESTS.findall(stderr)
    assert len(found) == 1, stderr
    return int(found[0])


def _scores_by_key(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(str(row["task"]), str(row["metric"])): row for row in rows}


def _assert_same_scores(
    left: Sequence[Mapping[str, Any]], right: Sequence[Mapping[str, Any]], *, tolerance: float = 1e-9
) -> None:
    left_by_key, right_by_key = _scores_by_key(left), _scores_by_key(right)
    assert left_by_key.keys() == right_by_key.keys()
    for key, row in left_by_key.items():
        other = right_by_key[key]
        assert int(row["n"]) == int(other["n"]), key
        for column in ("value", "stderr", "ci_low", "ci_high"):
            expected = pytest.approx(float(other[column]), rel=tolerance, abs=tolerance)
            assert float(row[column]) == expected, (key, column)


# -- bad input -----------------------------------------------------------------------------------------

# Each builder prepares files under tmp_path and returns (arguments after `harness run`, fragments the
# one-line message must contain). `--store store` is added unless the arguments name a store.
CaseBuilder = Callable[[Path], tuple[list[str], list[str]]]


def _missing_data_file(tmp: Path) -> tuple[list[str], list[str]]:
    path = _write_task(tmp / "task_files", data="no_such_file.jsonl")
    return ["--model", "mock:0", "--tasks", str(path)], ["no_such_file.jsonl", "not found"]


def _malformed_yaml(tmp: Path) -> tuple[list[str], list[str]]:
    path = tmp / "broken.yaml"
    path.write_text("task: broken\ndataset_path: json\ntest_split: test\ndoc_to_target: label: oops\n")
    return ["--model", "mock:0", "--tasks", str(path)], ["broken.yaml", "line 4"]


def _unknown_task_key(tmp: Path) -> tuple[list[str], list[str]]:
    path = _write_task(tmp / "task_files", extra="num_fewshots: 2\n")
    return ["--model", "mock:0", "--tasks", str(path)], ["'num_fewshots'", "did you mean 'num_fewshot'"]


def _unknown_task_name(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "mock:0", "--tasks", "harness_tone_x"], ["'harness_tone_x'", "'harness_tone'"]


def _unknown_metric(tmp: Path) -> tuple[list[str], list[str]]:
    path = _write_task(tmp / "task_files", extra="metric_list:\n  - metric: acc\n  - metric: acc_nrom\n")
    return ["--model", "mock:0", "--tasks", str(path)], ["'acc_nrom'", "'acc_norm'"]


def _limit_zero(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "mock:0", "--tasks", "harness_tone", "--limit", "0"], ["--limit"]


def _limit_negative(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "mock:0", "--tasks", "harness_tone", "--limit=-3"], ["--limit"]


def _empty_dataset(tmp: Path) -> tuple[list[str], list[str]]:
    path = _write_task(tmp / "task_files", name="cli_empty", data="empty.jsonl")
    (tmp / "task_files" / "empty.jsonl").write_text("")
    return ["--model", "mock:0", "--tasks", str(path)], ["cli_empty", "no documents"]


def _model_path_missing(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "hf:/nonexistent", "--tasks", "harness_tone"], ["/nonexistent"]


def _folder_not_a_model(tmp: Path) -> tuple[list[str], list[str]]:
    folder = tmp / "not_a_model"
    folder.mkdir()
    (folder / "README.txt").write_text("no config.json here\n")
    return ["--model", f"hf:{folder}", "--tasks", "harness_tone"], ["not_a_model", "config.json"]


def _store_is_a_file(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "store").write_text("I am a regular file, not a results store.\n")
    return ["--model", "mock:0", "--tasks", "harness_tone", "--store", "store"], ["store", "file"]


def _model_args_without_value(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "mock:0", "--tasks", "harness_tone", "--model-args", "novalue"], ["novalue"]


def _unknown_adapter(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "foo:bar", "--tasks", "harness_tone"], ["'foo'", "hf", "mock"]


def _misspelt_adapter(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "mok:0", "--tasks", "harness_tone"], ["'mok'", "'mock'"]


def _task_file_missing(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "mock:0", "--tasks", str(tmp / "nowhere.yaml")], ["nowhere.yaml", "not found"]


def _include_path_missing(tmp: Path) -> tuple[list[str], list[str]]:
    args = ["--model", "mock:0", "--tasks", "harness_tone", "--include-path", str(tmp / "no_folder")]
    return args, ["no_folder"]


def _template_missing_field(tmp: Path) -> tuple[list[str], list[str]]:
    path = _write_task(tmp / "task_files")
    path.write_text(path.read_text().replace("{{question}}", "{{questoin}}"))
    return ["--model", "mock:0", "--tasks", str(path)], ["questoin"]


def _metric_does_not_fit(tmp: Path) -> tuple[list[str], list[str]]:
    path = _write_task(tmp / "task_files", extra="metric_list:\n  - metric: word_perplexity\n")
    return ["--model", "mock:0", "--tasks", str(path)], ["word_perplexity", "multiple_choice"]


def _invalid_json_line(tmp: Path) -> tuple[list[str], list[str]]:
    path = _write_task(tmp / "task_files")
    with (tmp / "task_files" / "data.jsonl").open("a") as handle:
        handle.write('{"question": "broken", "label": \n')
    return ["--model", "mock:0", "--tasks", str(path)], ["data.jsonl", "line 7"]


def _usage_error(tmp: Path) -> tuple[list[str], list[str]]:
    return ["--model", "mock:0", "--tasks", "harness_tone", "--limit", "ten"], ["--limit", "ten"]


def _unrecognized_argument(tmp: Path) -> tuple[list[str], list[str]]:
    # Reported by the command it was given to, so the hint names that command's help.
    return ["--model", "mock:0", "--tasks", "harness_tone", "--foo"], [
        "unrecognized arguments: --foo",
        "'harness run --help'",
    ]


def _negative_bootstrap(tmp: Path) -> tuple[list[str], list[str]]:
    args = ["--model", "mock:0", "--tasks", "harness_tone", "--limit", "3", "--bootstrap-resamples=-1"]
    return args, ["bootstrap"]


BAD_INPUT: dict[str, CaseBuilder] = {
    "missing-data-file": _missing_data_file,
    "malformed-yaml": _malformed_yaml,
    "unknown-task-key": _unknown_task_key,
    "unknown-task-name": _unknown_task_name,
    "unknown-metric": _unknown_metric,
    "limit-zero": _limit_zero,
    "limit-negative": _limit_negative,
    "empty-dataset": _empty_dataset,
    "model-path-missing": _model_path_missing,
    "folder-not-a-model": _folder_not_a_model,
    "store-is-a-file": _store_is_a_file,
    "model-args-without-value": _model_args_without_value,
    "unknown-adapter": _unknown_adapter,
    "misspelt-adapter": _misspelt_adapter,
    "task-file-missing": _task_file_missing,
    "include-path-missing": _include_path_missing,
    "template-missing-field": _template_missing_field,
    "metric-does-not-fit": _metric_does_not_fit,
    "invalid-json-line": _invalid_json_line,
    "usage-error": _usage_error,
    "unrecognized-argument": _unrecognized_argument,
    "negative-bootstrap-resamples": _negative_bootstrap,
}
# The cases most likely to get far into a run before failing are also tried against an existing store.
AGAINST_EXISTING_STORE = (
    "unknown-metric",
    "empty-dataset",
    "limit-zero",
    "malformed-yaml",
    "unknown-adapter",
)


def _assert_rejected(result: subprocess.CompletedProcess[str], fragments: list[str]) -> str:
    lines = _stderr_lines(result)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("harness: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert result.stdout == "", result.stdout
    return line


def _run_bad_input(tmp_path: Path, case: str) -> subprocess.CompletedProcess[str]:
    args, fragments = BAD_INPUT[case](tmp_path)
    if "--store" not in args:
        args = [*args, "--store", "store"]
    before = _snapshot(tmp_path)
    result = harness_cli("run", *args, cwd=tmp_path)
    _assert_rejected(result, fragments)
    # Nothing created or changed anywhere under the working directory, store included.
    assert _snapshot(tmp_path) == before
    return result


@pytest.fixture(scope="module")
def existing_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one completed run and a filled request cache."""
    root = tmp_path_factory.mktemp("existing") / "store"
    harness.evaluate(model="mock:3", tasks=["harness_tone"], limit=4, store=root, bootstrap_resamples=20)
    return root


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2_with_no_store_created(tmp_path: Path, case: str) -> None:
    _run_bad_input(tmp_path, case)
    assert not (tmp_path / "default_store").exists()


@pytest.mark.parametrize("case", AGAINST_EXISTING_STORE)
def test_bad_input_leaves_an_existing_store_byte_identical(
    tmp_path: Path, existing_store: Path, case: str
) -> None:
    shutil.copytree(existing_store, tmp_path / "store")
    _run_bad_input(tmp_path, case)
    assert len(harness.ResultStore(tmp_path / "store").runs()) == 1


def test_error_message_is_plain_text_not_a_python_repr(tmp_path: Path) -> None:
    result = harness_cli(
        "run",
        "--model",
        "mock:0",
        "--tasks",
        "harness_tone",
        "--limit",
        "0",
        "--store",
        "store",
        cwd=tmp_path,
    )
    line = _assert_rejected(result, ["--limit"])
    # The message itself, not its Python repr wrapped in quotes.
    assert line.removeprefix("harness: error: ").startswith("--limit must be"), line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    before = _snapshot(tmp_path)
    result = harness_cli(
        "--debug", "run", "--model", "mock:0", "--tasks", "harness_tone_x", "--store", "store", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "harness_tone_x" in result.stderr
    assert _stderr_lines(result)[-1].startswith("harness: error: ")
    assert _snapshot(tmp_path) == before


def test_scores_of_a_missing_store_is_one_line(tmp_path: Path) -> None:
    result = harness_cli("scores", "--store", "nowhere", "--format", "json", cwd=tmp_path)
    _assert_rejected(result, ["nowhere"])
    assert not (tmp_path / "nowhere").exists()


def test_scores_of_an_unknown_run_is_one_line(tmp_path: Path, existing_store: Path) -> None:
    shutil.copytree(existing_store, tmp_path / "store")
    before = _snapshot(tmp_path)
    result = harness_cli("scores", "--store", "store", "--run", "20000101T000000-deadbeef", cwd=tmp_path)
    _assert_rejected(result, ["20000101T000000-deadbeef"])
    assert _snapshot(tmp_path) == before


def test_tasks_with_a_missing_include_path_is_one_line(tmp_path: Path) -> None:
    result = harness_cli("tasks", "--include-path", str(tmp_path / "no_folder"), cwd=tmp_path)
    _assert_rejected(result, ["no_folder"])


def test_unreadable_model_args_for_a_real_model_are_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    before = _snapshot(tmp_path)
    result = harness_cli(
        "run",
        "--model",
        f"hf:{tiny_model_dir}",
        "--model-args",
        "max_length=long",
        "--tasks",
        "harness_tone",
        "--limit",
        "2",
        "--store",
        "store",
        cwd=tmp_path,
    )
    _assert_rejected(result, ["max_length", "long"])
    assert _snapshot(tmp_path) == before


# -- happy paths -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`harness run` on two built-in tasks into a new store: (working directory, finished process)."""
    cwd = tmp_path_factory.mktemp("cli_run")
    result = harness_cli(
        "run",
        "--model",
        "mock:0",
        "--tasks",
        "harness_tone,harness_facts_qa",
        "--limit",
        "10",
        "--format",
        "json",
        "--store",
        "store",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return cwd, result


def test_run_prints_scores_as_json(first_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = first_run
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and rows
    # harness_facts_qa groups its documents by category, which adds per-group and gap rows.
    task_rows = [row for row in rows if not row["metric"].startswith(("group/", "fairness/"))]
    assert any(row["metric"].startswith("group/exact_match/") for row in rows)
    for row in rows:
        assert list(row) == MACHINE_KEYS
        assert row["model"] == "mock"
        assert row["lm_eval_key"] == f"{row['metric']},none" and row["filter"] == "none"
    for row in task_rows:
        assert row["n"] == 10
        assert isinstance(row["value"], float | int)
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert len({row["run_id"] for row in rows}) == 1
    assert sorted(_scores_by_key(task_rows)) == [
        ("harness_facts_qa", "exact_match"),
        ("harness_tone", "acc"),
        ("harness_tone", "acc_norm"),
    ]
    # Ten tone documents with five options each, plus ten generations; nothing cached yet.
    assert _model_requests(result.stderr) == 60
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("output_format", ["json", "csv", "table"])
def test_scores_shows_what_run_printed(
    first_run: tuple[Path, subprocess.CompletedProcess[str]], output_format: str
) -> None:
    cwd, run = first_run
    printed = json.loads(run.stdout)
    result = harness_cli("scores", "--store", "store", "--format", output_format, cwd=cwd)
    assert result.returncode == 0, result.stderr
    if output_format == "json":
        rows = json.loads(result.stdout)
        assert rows == printed
        return
    if output_format == "csv":
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert list(rows[0]) == MACHINE_KEYS
        assert {row["run_id"] for row in rows} == {printed[0]["run_id"]}
        # CSV keeps full precision; the JSON output has 10 decimals.
        _assert_same_scores(rows, printed)
        return
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    header, body = lines[0], lines[1:]
    # One run: the table leaves out the run id column.
    assert header == [key for key in SCORE_KEYS if key != "run_id"]
    table_rows = [dict(zip(header, values, strict=True)) for values in body]
    assert len(table_rows) == len(printed)
    _assert_same_scores(table_rows, printed, tolerance=5e-5)


def test_second_identical_run_is_served_from_the_cache(
    tmp_path: Path, first_run: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    cwd, first = first_run
    shutil.copytree(cwd / "store", tmp_path / "store")
    result = harness_cli(
        "run",
        "--model",
        "mock:0",
        "--tasks",
        "harness_tone,harness_facts_qa",
        "--limit",
        "10",
        "--format",
        "json",
        "--store",
        "store",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "0 run on the model" in result.stderr
    assert _model_requests(result.stderr) == 0
    assert "60 from cache" in result.stderr
    rows, first_rows = json.loads(result.stdout), json.loads(first.stdout)
    assert rows[0]["run_id"] != first_rows[0]["run_id"]
    _assert_same_scores(rows, first_rows, tolerance=0.0)
    assert len(harness.ResultStore(tmp_path / "store").runs()) == 2


@pytest.mark.parametrize("output_format", ["table", "json"])
def test_tasks_lists_the_builtin_suite(tmp_path: Path, output_format: str) -> None:
    result = harness_cli("tasks", "--format", output_format, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if output_format == "json":
        rows = {row["task"]: row for row in json.loads(result.stdout)}
        assert set(BUILTIN_TASKS) <= set(rows)
        assert rows["harness_prose_ppl"]["output_type"] == "loglikelihood_rolling"
        assert rows["harness_reading_mc"]["output_type"] == "multiple_choice"
        assert rows["harness_tone"]["output_type"] == "multiple_choice"
        assert rows["harness_facts_qa"]["output_type"] == "generate_until"
    else:
        listed = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()}
        assert set(BUILTIN_TASKS) <= listed
        assert "error" not in result.stdout


def test_yaml_task_by_name_from_include_path_and_by_file_path(tmp_path: Path) -> None:
    path = _write_task(tmp_path / "my_tasks", name="cli_yes_no")
    listed = harness_cli("tasks", "--include-path", "my_tasks", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "cli_yes_no" in listed.stdout

    by_name = harness_cli(
        "run",
        "--model",
        "mock:0",
        "--include-path",
        "my_tasks",
        "--tasks",
        "cli_yes_no",
        "--format",
        "json",
        "--quiet",
        "--store",
        "store",
        cwd=tmp_path,
    )
    assert by_name.returncode == 0, by_name.stderr
    by_path = harness_cli(
        "run",
        "--model",
        "mock:0",
        "--tasks",
        str(path),
        "--format",
        "json",
        "--quiet",
        "--store",
        "other_store",
        cwd=tmp_path,
    )
    assert by_path.returncode == 0, by_path.stderr

    name_rows, path_rows = json.loads(by_name.stdout), json.loads(by_path.stdout)
    assert {row["task"] for row in name_rows} == {"cli_yes_no"}
    assert {row["metric"] for row in name_rows} >= {"acc"}
    assert all(row["n"] == len(DOCS) for row in name_rows)
    _assert_same_scores(name_rows, path_rows, tolerance=0.0)
    assert _model_requests(by_name.stderr) == 2 * len(DOCS)


def test_python_api_matches_stored_scores(tmp_path: Path) -> None:
    store = tmp_path / "store"
    report = harness.evaluate(model="mock:0", tasks=["harness_tone"], limit=5, store=store)
    assert report.store == store
    assert {score.task for score in report.scores} == {"harness_tone"}
    assert all(score.n == 5 for score in report.scores)

    result = harness_cli(
        "scores", "--store", str(store), "--run", report.run_id, "--format", "json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {row["run_id"] for row in rows} == {report.run_id}
    assert {row["model"] for row in rows} == {report.model}
    api_rows = [
        {
            "task": s.task,
            "metric": s.metric,
            "value": s.value,
            "stderr": s.stderr,
            "ci_low": s.ci_low,
            "ci_high": s.ci_high,
            "n": s.n,
        }
        for s in report.scores
    ]
    _assert_same_scores(api_rows, rows)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("acc_nrom", "'acc_norm'"),
        ("blue", "'bleu'"),
        ("rougel", "'rougeL'"),
        ("perplexity_word", "'word_perplexity'"),
        ("exact", "'exact_match' or 'squad_exact_match'"),
        # Looking alike is not meaning alike: no hint, the known names instead.
        ("mcc", None),
        ("meteor", None),
        ("accuracy", None),
    ],
)
def test_metric_hints_only_name_metrics_of_the_same_meaning(name: str, hint: str | None) -> None:
    from harness.errors import UnknownNameError
    from harness.metrics import METRICS

    message = str(UnknownNameError("metric", name, METRICS.names()))
    if hint is None:
        assert "did you mean" not in message and "(known: acc, acc_norm," in message
    else:
        assert message == f"unknown metric '{name}'; did you mean {hint}?"


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("fairness", "'fairness_ambiguous_questions', 'fairness_counterfactual_decisions'"),
        ("tone", "'first_look_tone' or 'harness_tone'"),
        ("harness_fact_qa", "'harness_facts_qa'"),
        ("first-look", "'first_look'"),
        ("mmlu", None),
    ],
)
def test_task_hints_never_point_at_another_task(name: str, hint: str | None) -> None:
    from harness.errors import UnknownNameError
    from harness.tasks.registry import resolve_selection

    with pytest.raises(UnknownNameError) as raised:
        resolve_selection([name])
    message = str(raised.value)
    assert "harness_tone'" not in message or name == "tone"  # `fairness` once pointed at harness_tone
    if hint is None:
        assert "did you mean" not in message and "all, " in message  # the suites are listed too
    else:
        assert f"did you mean {hint}" in message


def test_store_check_reports_unrecognized_arguments_against_its_own_help(tmp_path: Path) -> None:
    result = harness_cli("store", "check", "--bar", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert _stderr_lines(result) == [
        "harness: error: unrecognized arguments: --bar (see 'harness store check --help')"
    ]


def test_tasks_reports_a_broken_yaml_on_stderr_not_in_a_column(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    _write_task(folder, "good_task")
    (folder / "broken.yaml").write_text("task: broken_task\n  output_type: [unclosed\n", encoding="utf-8")
    for output_format in ("table", "json"):
        result = harness_cli("tasks", "--include-path", str(folder), "--format", output_format, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "broken_task" not in result.stdout and "broken.yaml" not in result.stdout
        assert "invalid YAML" not in result.stdout
        (warning,) = [line for line in _stderr_lines(result) if "broken.yaml" in line]
        assert warning.startswith(f"harness: warning: {folder / 'broken.yaml'}: invalid YAML")
        assert warning.endswith("(not listed)")
    rows = {row["task"]: row for row in json.loads(result.stdout)}
    assert "good_task" in rows and set(rows["good_task"]) == {
        "task",
        "kind",
        "version",
        "output_type",
        "source",
    }
    assert rows["harness_tone"]["version"] == "1.0" and rows["good_task"]["version"] is None
