"""Task templates are data: they render sandboxed, with budgets, and still render lm-eval's templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.tasks import templates

DOC = {"question": "Why?", "choices": ["a", "b"], "d": {"k": 1}}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "unsafe"),
        ("{{ joiner.__init__.__globals__['os'].system('true') }}", "unsafe"),
        ("{{ d.__class__.__mro__ }}", "unsafe"),
        ("{{ self._TemplateReference__context }}", "unsafe"),
        ("{{ d.update({'k': 2}) }}", "unsafe"),
        ("{% for i in range(100000000) %}x{% endfor %}", "more than 1,000,000 steps"),
        (
            "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}",
            "more than 1,000,000 steps",
        ),
        ("{{ 'x' * 100000000 }}", "repetition longer"),
        ("{{ 9 ** 99999999 }}", "exponent"),
    ],
)
def test_hostile_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        templates.render(template, DOC)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Question: {{question}}\nAnswer:", "Question: Why?\nAnswer:"),
        ("{{choices|join(', ')}}", "a, b"),
        ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
        ("{{ question | regex_replace('W', 'w') }}", "why?"),
        ("{{ 'ab' * 2 }} {{ 2 ** 10 }}", "abab 1024"),
    ],
)
def test_ordinary_templates_render(template: str, expected: str) -> None:
    assert templates.render(template, DOC) == expected


def test_the_budget_is_per_render() -> None:
    template = "{% for i in range(600000) %}{% endfor %}ok"
    assert templates.render(template, DOC) == "ok"
    assert templates.render(template, DOC) == "ok"


def test_a_hostile_task_file_exits_2_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "d.jsonl").write_text(json.dumps({"q": "x", "a": "y"}) + "\n", encoding="utf-8")
    (tmp_path / "t.yaml").write_text(
        "task: t\ndataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\ntest_split: test\n"
        f"doc_to_text: \"{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}\"\n"
        "doc_to_target: a\n",
        encoding="utf-8",
    )
    env = {**os.environ, "HARNESS_STORE": str(tmp_path / "store")}
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--model", "mock:0", "--tasks", "t.yaml", "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "unsafe" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    assert not any((tmp_path / "store").rglob("*.parquet"))
