"""Hostile and careless task files through `harness run`: a template that tries to run a command is
one error line and runs nothing, in every place a template can stand; documents with null or NaN
template fields still run (rendered as lm-eval renders them) with exactly one warning line that counts
them and names the first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from harness.store import ResultStore
from tests.test_bad_input import Result, assert_one_error, cli, snapshot

DOCUMENTS = 10  # enough that the run adds no "too few documents" warning of its own


def _task_folder(
    folder: Path, fields: dict[str, object], rows: list[dict[str, object]] | None = None
) -> Path:
    folder.mkdir(exist_ok=True)
    rows = rows or [{"q": f"Question {i}?", "a": "yes", "label": i % 2} for i in range(DOCUMENTS)]
    (folder / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    config = {
        "task": "probe",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": "d.jsonl"}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{q}}",
        "doc_to_choice": ["no", "yes"],
        "doc_to_target": "label",
        **fields,
    }
    path = folder / "probe.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def _run(capsys: pytest.CaptureFixture[str], task: Path, store: Path) -> Result:
    arguments = ["--model", "mock:0", "--tasks", str(task), "--store", str(store), "--quiet", "--no-cache"]
    return cli(capsys, "run", *arguments)


# Ways a template reaches Python's internals, each told to create the marker file if it gets there.
ESCAPES = {
    "cycler globals": "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "joiner globals": "{{ joiner.__init__.__globals__['os'].popen('touch MARKER').read() }}",
    "namespace globals": "{{ namespace.__init__.__globals__.os.system('touch MARKER') }}",
    "lipsum globals": "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
    "subclasses": "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == 'Popen' %}"
    "{{ c(['touch', 'MARKER']) }}{% endif %}{% endfor %}",
    "format string": "{{ '{0.__class__.__init__.__globals__}'.format(q) }}",
    "attr filter": "{{ (q|attr('__class__')|attr('__mro__'))[1].__subclasses__() }}",
    "self reference": "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch MARKER') }}",
}
SLOTS = {
    "doc_to_text": lambda template: {"doc_to_text": template},
    "doc_to_target": lambda template: {"doc_to_target": template},
    "doc_to_choice": lambda template: {"doc_to_choice": template},
    "description": lambda template: {"description": template},
    "fewshot doc_to_text": lambda template: {
        "num_fewshot": 1,
        "fewshot_split": "test",
        "fewshot_config": {"sampler": "first_n", "doc_to_text": template},
    },
}


@pytest.mark.parametrize(
    ("slot", "escape"),
    [
        (slot, escape)
        for slot in SLOTS
        for escape in ESCAPES
        if slot == "doc_to_text" or escape == "cycler globals"
    ],
)
def test_a_template_that_reaches_for_python_runs_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, slot: str, escape: str
) -> None:
    marker = tmp_path / "ran"
    template = ESCAPES[escape].replace("MARKER", str(marker))
    task = _task_folder(tmp_path / "task", SLOTS[slot](template))
    store = tmp_path / "store"
    line = assert_one_error(_run(capsys, task, store))
    assert "unsafe" in line, line
    assert not marker.exists()  # no command ran
    assert not list(store.rglob("*.parquet"))  # and nothing was stored


def test_null_and_nan_fields_warn_once_and_still_render_as_lm_eval_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows: list[dict[str, object]] = [{"q": f"Question {i}?", "label": i % 2} for i in range(DOCUMENTS)]
    rows[3]["q"], rows[7]["q"] = None, math.nan  # JSON null, and NaN (which Python's json writes and reads)
    task = _task_folder(tmp_path / "task", {"doc_to_text": "Q: {{q}}"}, rows)
    store = tmp_path / "store"
    result = _run(capsys, task, store)
    assert result.code == 0, result
    warnings = [line for line in result.err.splitlines() if line.startswith("harness: warning: ")]
    assert len(warnings) == 1, result.err
    assert "2 of 10 documents" in warnings[0] and "document 3" in warnings[0] and "'q'" in warnings[0]
    samples = ResultStore(store).samples()
    prompts = dict(zip(samples["doc_id"], samples["prompt"], strict=True))
    assert prompts[3] == "Q: None" and prompts[7] == "Q: nan"  # lm-eval's rendering, for parity


def test_a_null_target_field_in_parquet_is_counted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "task"
    folder.mkdir()
    frame = pd.DataFrame(
        {"q": [f"Q{i}" for i in range(DOCUMENTS)], "a": ["yes"] * 8 + [None, None], "label": [1] * DOCUMENTS}
    )
    frame.to_parquet(folder / "d.parquet")
    config = {
        "task": "probe_parquet",
        "dataset_path": "parquet",
        "dataset_kwargs": {"data_files": {"test": "d.parquet"}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{q}}",
        "doc_to_target": "a",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": 4},
    }
    (folder / "t.yaml").write_text(json.dumps(config), encoding="utf-8")
    result = _run(capsys, folder / "t.yaml", tmp_path / "store")
    assert result.code == 0, result
    (warning,) = [line for line in result.err.splitlines() if line.startswith("harness: warning: ")]
    assert "'probe_parquet': 2 of 10 documents" in warning and "document 8, field 'a'" in warning


def test_clean_documents_do_not_warn(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = _run(capsys, _task_folder(tmp_path / "task", {}), tmp_path / "store")
    assert result.code == 0 and "warning" not in result.err, result


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"doc_to_text": "{{ q"}, "invalid Jinja template"),
        ({"doc_to_text": "{{ missing_field }}"}, "missing field"),
        ({"doc_to_text": "{{ q + 1 }}"}, "failed: TypeError"),
        ({"doc_to_text": "{{ 1 / 0 }}"}, "ZeroDivisionError"),
        ({"doc_to_choice": "{{ q }}"}, "not a list"),
        ({"doc_to_choice": "[]"}, "non-empty list"),
        ({"doc_to_text": "{{ q | no_such_filter }}"}, "no_such_filter"),
        ({"doc_to_text": "{% for i in range(10**9) %}{% endfor %}"}, "steps"),
        ({"doc_to_text": "{{ 'ab' * 10**8 }}"}, "repetition longer"),
        ({"description": "{{ 2 ** 100000 }}"}, "exponent"),
    ],
    ids=[
        "unclosed",
        "missing field",
        "type error",
        "division by zero",
        "choice not a list",
        "no choices",
        "unknown filter",
        "endless loop",
        "huge string",
        "huge power",
    ],
)
def test_templates_that_fail_are_one_line_and_store_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    store = tmp_path / "store"
    earlier = _run(capsys, _task_folder(tmp_path / "good", {}), store)
    assert earlier.code == 0, earlier  # a run that must survive the failing one
    before = snapshot(store)
    assert_one_error(_run(capsys, _task_folder(tmp_path / "bad", fields), store), message)
    assert snapshot(store) == before


def test_targets_outside_the_choices_are_one_warning_and_scored_wrong(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """lm-eval scores such a document as wrong (gold -100) and carries on; one line says how many."""
    rows: list[dict[str, object]] = [{"q": f"Question {i}?", "label": 1} for i in range(DOCUMENTS)]
    rows[4]["label"] = rows[6]["label"] = 7
    result = _run(capsys, _task_folder(tmp_path / "task", {}, rows), tmp_path / "store")
    assert result.code == 0, result
    (warning,) = [line for line in result.err.splitlines() if line.startswith("harness: warning: ")]
    assert "2 of 10 documents" in warning and "document 4, target 7" in warning, warning
    assert len(result.lines) == 2  # the warning and the run's summary line
