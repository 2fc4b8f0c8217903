"""The task name index: the same names, kinds, paths and tag members as lm-eval's own index.

On lm-eval's whole task folder against `TaskManager`, and on small folders against lm-eval's `TaskIndex`
(include chains, keys only from an include, tag lists, groups, duplicates, broken files, `!function`,
include cycles), plus the line reader against PyYAML on tricky snippets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.tasks.index import (
    IndexEntry,
    TaskFolderIndex,
    clear_include_cache,
    index_task_folders,
    scan_task_folders,
)
from harness.tasks.yaml_keys import UnreadableYaml, read_index_keys

lm_eval_tasks = pytest.importorskip("lm_eval.tasks")
LM_EVAL_TASKS = Path(lm_eval_tasks.__file__).parent
LM_EVAL_KINDS = {"TASK": "task", "GROUP": "group", "TAG": "tag", "PY_TASK": "python_task"}

View = dict[str, tuple[str, Path | None, tuple[str, ...]]]


@pytest.fixture(scope="module")
def task_manager() -> Any:
    return lm_eval_tasks.TaskManager()  # indexes lm-eval's whole task folder: a few seconds


@pytest.fixture(scope="module")
def lm_eval_tasks_scan() -> TaskFolderIndex:
    clear_include_cache()
    return scan_task_folders([LM_EVAL_TASKS])


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def _view(entries: dict[str, IndexEntry]) -> View:
    return {name: (entry.kind, entry.path, entry.members) for name, entry in entries.items()}


def _lm_eval_view(folders: Sequence[Path]) -> View:
    from lm_eval.tasks._index import TaskIndex

    view: View = {}
    for name, entry in TaskIndex.build(list(folders)).items():
        kind = LM_EVAL_KINDS[entry.kind.name]
        view[name] = (kind, entry.yaml_path, tuple(sorted(entry.tags)) if kind == "tag" else ())
    return view


def _problems(scan: TaskFolderIndex, folder: Path) -> dict[str, str]:
    return {problem.path.relative_to(folder).as_posix(): problem.reason for problem in scan.problems}


# ---------------------------------------------------------------------------------------- lm-eval's tasks


def test_index_lists_what_lm_eval_task_manager_lists(
    task_manager: Any, lm_eval_tasks_scan: TaskFolderIndex
) -> None:
    ours = lm_eval_tasks_scan.entries
    theirs = task_manager.all_tasks  # tasks, groups and tags
    missing = [name for name in theirs if name not in ours]
    coverage = 1 - len(missing) / len(theirs)
    assert coverage >= 0.99, f"{coverage:.2%} of {len(theirs)} names; missing: {missing[:200]}"
    assert not missing, f"missing {len(missing)} of {len(theirs)} names: {missing[:200]}"
    for listed, kinds in (
        (task_manager.all_groups, {"group"}),
        (task_manager.all_tags, {"tag"}),
        (task_manager.all_subtasks, {"task", "python_task"}),
    ):
        wrong = [(name, ours[name].kind) for name in listed if name in ours and ours[name].kind not in kinds]
        assert not wrong, f"kinds differ from lm-eval's {sorted(kinds)}: {wrong[:50]}"
    extra = sorted(set(ours) - set(theirs))
    assert not extra, f"names lm-eval does not list: {extra[:200]}"


def test_paths_and_tag_members_match_lm_eval(task_manager: Any, lm_eval_tasks_scan: TaskFolderIndex) -> None:
    ours = lm_eval_tasks_scan.entries
    differences: list[tuple[str, str, object, object]] = []
    for name, entry in task_manager.task_index.items():
        if name not in ours:
            continue
        kind = LM_EVAL_KINDS[entry.kind.name]
        if kind != ours[name].kind:
            differences.append((name, "kind", kind, ours[name].kind))
        elif kind == "tag" and tuple(sorted(entry.tags)) != ours[name].members:
            differences.append((name, "members", sorted(entry.tags), ours[name].members))
        elif kind != "tag" and entry.yaml_path != ours[name].path:
            differences.append((name, "path", entry.yaml_path, ours[name].path))
    assert not differences, differences[:50]


def test_files_skipped_on_lm_eval_tasks_are_reported(
    task_manager: Any, lm_eval_tasks_scan: TaskFolderIndex
) -> None:
    indexed = {entry.yaml_path for entry in task_manager.task_index.values()}
    reported = {problem.path for problem in lm_eval_tasks_scan.problems}
    assert reported, "lm-eval 0.4.13 has template files with no task name; they should be reported"
    assert not reported & indexed, sorted(reported & indexed)[:20]


def test_line_reader_agrees_with_full_parse_on_lm_eval_tasks(lm_eval_tasks_scan: TaskFolderIndex) -> None:
    parsed = scan_task_folders([LM_EVAL_TASKS], full_parse=True)
    assert dict(parsed.entries) == dict(lm_eval_tasks_scan.entries)
    assert parsed.problems == lm_eval_tasks_scan.problems


# ---------------------------------------------------------------------------------------- small folders


def test_include_chains_merge_in_lm_eval_order(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "_base_yaml": "tag: base_tag\noutput_type: multiple_choice\n",
            "_a_yaml": "include: _base_yaml\ntask: from_a\ntag: a_tag\n",
            "_b_yaml": "task: from_b\n",
            "later_include_wins.yaml": "include: [_a_yaml, _b_yaml]\n",
            "own_key_wins.yaml": "include:\n  - _a_yaml\n  - _b_yaml\ntask: own\n",
            # relative to the including file, at every step of the chain
            "sub/deeper/relative.yaml": "include: ../_middle_yaml\ndataset_name: x\n",
            "sub/_middle_yaml": "include: ../_a_yaml\ntask: middle\n",
        },
    )
    ours = index_task_folders([folder])
    assert _view(ours) == _lm_eval_view([folder])
    assert ours["from_b"] == IndexEntry("from_b", "task", folder / "later_include_wins.yaml")
    assert ours["own"].path == folder / "own_key_wins.yaml"
    assert ours["middle"].path == folder / "sub/deeper/relative.yaml"
    assert ours["a_tag"].members == ("from_b", "middle", "own")
    assert "base_tag" not in ours  # overridden by _a_yaml's tag


def test_names_and_kinds_that_come_only_from_an_include(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "_default_template_yaml": "task: templated\ntag: template_tag\noutput_type: generate_until\n",
            "only_include.yaml": "include: _default_template_yaml\ndataset_name: one\n",
            "_group_template_yaml": "group: inherited_group\n",
            # group: from the include makes a group even though task: here is a string
            "becomes_group.yaml": "include: _group_template_yaml\ntask: a_string\n",
            "_python_template_yaml": "class: !function tasks.MyTask\n",
            "python.yaml": "include: _python_template_yaml\ntask: python_from_include\n",
        },
    )
    ours = index_task_folders([folder])
    assert _view(ours) == _lm_eval_view([folder])
    assert ours["templated"] == IndexEntry("templated", "task", folder / "only_include.yaml")
    assert ours["template_tag"].members == ("templated",)
    assert ours["inherited_group"].kind == "group"
    assert "a_string" not in ours
    assert ours["python_from_include"].kind == "python_task"


def test_tag_lists_in_every_spelling(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "g.yaml": "group: grp\ntag: from_group\ntask: [t1]\n",  # groups do not register tags
            "t1.yaml": "task: t1\ntag: [alpha, beta]\n",
            "t2.yaml": "task: t2\ntag:\n  - beta\n  - gamma  # a comment\n",
            "t3.yaml": "task: t3\n'tag':\n- alpha\n- \"delta\"\n",
            "t4.yaml": '"task": "t4"\n"tag": gamma\n',
            "t5.yaml": "task: t5\ntag: t1\n",  # a tag named like a task adds nothing
            "zz.yaml": "task: alpha\n",  # a task named like an earlier tag is a duplicate
        },
    )
    scan = scan_task_folders([folder])
    assert _view(dict(scan.entries)) == _lm_eval_view([folder])
    members = {name: entry.members for name, entry in scan.entries.items() if entry.kind == "tag"}
    assert members == {"alpha": ("t1", "t3"), "beta": ("t1", "t2"), "gamma": ("t2", "t4"), "delta": ("t3",)}
    assert scan.entries["t1"].kind == "task"
    assert "duplicate name 'alpha'" in _problems(scan, folder)["zz.yaml"]


def test_groups_python_tasks_and_task_lists(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "g1.yaml": "group: g1\ntask:\n  - t_a\n  - task: t_b\n    num_fewshot: 0\n"
            "aggregate_metric_list:\n  - metric: acc\n",
            "g2.yaml": "group: g2\ntask: t_string\n",
            "py.yaml": "class: !function my_module.MyTask\ntask: py_task\n",
            "py_without_name.yaml": "class: !function my_module.MyTask\n",
            "list_without_group.yaml": "task:\n- a\n- b\n",
        },
    )
    scan = scan_task_folders([folder])
    assert _view(dict(scan.entries)) == _lm_eval_view([folder])
    assert {name: entry.kind for name, entry in scan.entries.items()} == {
        "g1": "group",
        "g2": "group",
        "py_task": "python_task",
    }
    assert set(_problems(scan, folder)) == {"py_without_name.yaml", "list_without_group.yaml"}


def test_duplicates_first_sorted_path_wins_and_later_folders_override(tmp_path: Path) -> None:
    first = _write(
        tmp_path / "first",
        {
            "a/x.yaml": "task: same\n",
            "a-b.yaml": "task: same\ndataset_name: wins\n",  # "a-b.yaml" < "a/x.yaml" as POSIX paths
            "f1.yaml": "task: f1\ntag: shared_tag\n",
            "only_first.yaml": "task: only_first\n",
        },
    )
    second = _write(
        tmp_path / "second", {"same.yaml": "task: same\n", "f2.yaml": "task: f2\ntag: shared_tag\n"}
    )
    alone = scan_task_folders([first])
    assert alone.entries["same"].path == first / "a-b.yaml"
    assert "already defined in" in _problems(alone, first)["a/x.yaml"]
    both = index_task_folders([first, second])
    assert _view(both) == _lm_eval_view([first, second])
    assert both["same"].path == second / "same.yaml"
    assert both["shared_tag"].members == ("f2",)  # the later folder's tag replaces, not extends
    assert both["only_first"].path == first / "only_first.yaml"


def test_broken_files_are_skipped_and_reported(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "fine.yaml": "task: fine\n",
            "open_quote.yaml": 'task: open_quote\ndoc_to_text: "never closed\n',
            "bad_indent.yaml": "task: bad_indent\n  num_fewshot: 1\n",
            "a_list.yaml": "- task: a_list\n",
            "empty.yaml": "",
            "control_character.yaml": b"task: control\x01character\n",
            "missing_include.yaml": "include: nowhere_yaml\ntask: missing_include\n",
            "tab_indent.yaml": "task: tab_indent\n\tnum_fewshot: 1\n",
            "tab_after_colon.yaml": "task:\tfine_for_libyaml\n",
        },
    )
    scan = scan_task_folders([folder])
    assert _view(dict(scan.entries)) == _lm_eval_view([folder])
    assert set(scan.entries) == {"fine", "fine_for_libyaml"}
    problems = _problems(scan, folder)
    assert set(problems) == {
        "open_quote.yaml",
        "bad_indent.yaml",
        "a_list.yaml",
        "empty.yaml",
        "control_character.yaml",
        "missing_include.yaml",
        "tab_indent.yaml",
    }
    assert problems["open_quote.yaml"].startswith("invalid YAML")
    assert problems["a_list.yaml"] == "not a YAML mapping (a list)"
    assert "No such file" in problems["missing_include.yaml"]


def test_full_parse_also_catches_breakage_in_indented_lines(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"deep.yaml": "task: deep\nmetadata:\n  version: [1\n"})
    assert "deep" in index_task_folders([folder])  # the line reader never looks at indented lines
    strict = scan_task_folders([folder], full_parse=True)
    assert not strict.entries
    assert _view(dict(strict.entries)) == _lm_eval_view([folder])


def test_function_references_and_other_tags(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "line_reader.yaml": "task: line_reader\nprocess_docs: !function utils.process_docs\n"
            "filter_list:\n  - filter:\n      - function: !function utils.Filter\n",
            "parser.yaml": "---\ntask: parser\ndoc_to_text: !function utils.doc_to_text\n",
            "python.yaml": "class: !function tasks.MyTask\ntask: python\n",
        },
    )
    ours = index_task_folders([folder])
    assert _view(ours) == _lm_eval_view([folder])
    assert sorted(ours) == ["line_reader", "parser", "python"]
    # lm-eval rejects tags other than !function; here they read as plain values, so that a file's names
    # do not depend on whether the line reader (which skips indented lines) or the parser read it.
    _write(folder, {"unknown_tag.yaml": "---\ntask: unknown_tag\nmetric: !custom thing\n"})
    assert "unknown_tag" in index_task_folders([folder])
    assert "unknown_tag" not in _lm_eval_view([folder])


def test_include_cycles_are_reported_not_followed(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "a.yaml": "include: b.yaml\ntask: a\n",
            "b.yaml": "include: a.yaml\ntask: b\n",
            "itself.yaml": "include: itself.yaml\ntask: itself\n",
            # lm-eval's one "seen" set over the include tree makes a template reached twice a cycle too
            "_base_yaml": "output_type: multiple_choice\n",
            "_left_yaml": "include: _base_yaml\n",
            "_right_yaml": "include: _base_yaml\n",
            "diamond.yaml": "include: [_left_yaml, _right_yaml]\ntask: diamond\n",
            "fine.yaml": "include: _left_yaml\ntask: fine\n",
        },
    )
    scan = scan_task_folders([folder])
    assert _view(dict(scan.entries)) == _lm_eval_view([folder])
    assert set(scan.entries) == {"fine"}
    problems = _problems(scan, folder)
    assert set(problems) == {"a.yaml", "b.yaml", "itself.yaml", "diamond.yaml"}
    assert all("include cycle" in reason for reason in problems.values()), problems


def test_ignored_folders_suffixes_and_symlinks_as_lm_eval_globs(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "tasks",
        {
            "__pycache__/cached.yaml": "task: cached\n",
            ".ipynb_checkpoints/checkpoint.yaml": "task: checkpoint\n",
            "sub/__pycache__/deep.yaml": "task: deep_cached\n",
            "other_suffix.yml": "task: yml\n",
            "upper.YAML": "task: upper\n",
            ".hidden.yaml": "task: hidden\n",
            "kept/kept.yaml": "task: kept\n",
        },
    )
    _write(tmp_path / "elsewhere", {"linked.yaml": "task: linked\n"})
    os.symlink(tmp_path / "elsewhere", folder / "linked_folder")
    os.symlink(tmp_path / "elsewhere" / "linked.yaml", folder / "linked_file.yaml")
    ours = index_task_folders([folder])
    assert _view(ours) == _lm_eval_view([folder])
    assert sorted(ours) == ["hidden", "kept", "linked"]
    # found through the linked file; the linked folder is not entered (pathlib's "**" does not follow it)
    assert ours["linked"].path == folder / "linked_file.yaml"


def test_generated_file_shapes(tmp_path: Path) -> None:
    quoted_over_lines = (
        'doc_to_text: "Answer the question with a number, making sure\\\n'
        "  \\ that it is clear. \\n\\nQuestion:\\\n"
        '  \\ {{question}} \\nAnswer: "\n'
    )
    folder = _write(
        tmp_path,
        {
            "quoted_keys.yaml": '"dataset_name": "x"\n"include": "_t_yaml"\n"task": "quoted_keys"\n',
            "_t_yaml": "tag: from_template\n",
            "over_lines.yaml": "# Generated by utils.py\n" + quoted_over_lines + "task: over_lines\n",
            "single_over_lines.yaml": "doc_to_choice: '{{[a+\", x? y, \"+b,\n  c]}}'\ntask: single\n",
            "column_zero_continuation.yaml": 'task: continued\ndoc_to_text: "Text:\nAnswer: {{a}}"\n',
            "block_scalar.yaml": "doc_to_text: |\n  task: not_this\n  more\ntask: block_scalar\n",
            "crlf.yaml": b"task: crlf\r\ntag:\r\n  - crlf_tag\r\n",
            "bom.yaml": "\ufefftask: bom\n",
            "comments.yaml": "# task: commented\ntask: comments  # trailing\n# the end\n",
            "plain_continued.yaml": "task: plain\n  continued\n",
        },
    )
    ours = index_task_folders([folder])
    assert _view(ours) == _lm_eval_view([folder])
    assert ours["from_template"].members == ("quoted_keys",)
    assert "plain continued" in ours  # a plain scalar carried on over an indented line is one name


TRICKY_SNIPPETS = [
    "task: yes\n",
    "task: 123\n",
    "task: 2wikimqa\n",
    "task: 1e3\n",
    "task: null\n",
    "task: ~\n",
    "task:\n",
    "task: 'it''s'\n",
    'task: "a#b"  # comment\n',
    "task: a#b # comment\n",
    'task: "escaped\\ttab"\n',
    "task: a: b\n",
    "task: &anchor name\nother: *anchor\n",
    "<<: {task: merged}\n",
    "task: first\ntask: second\n",
    "tag: []\ntask: t\n",
    "tag: [a, 'b', \"c\",]\ntask: t\n",
    "tag: [a, [b]]\ntask: t\n",
    "tag:\n  - a\n  -  b\n",
    "tag:\n  - a\n    - b\n",
    "tag:\n  a: 1\n",
    "tag: >\n  folded\n",
    "include: !function x.y\n",
    "class:\n  nested: mapping\ntask: t\n",
    "group: g\ntask:\n  - a\n",
    "  task: indented\n",
    "--- \ntask: document\n...\n",
    "task: a\n---\ntask: b\n",
    "? task\n: complex\n",
    "task: x\n- item\n",
    "description: x\n- item\ntask: t\n",
    "metric_list:\n- metric: acc\n  higher_is_better: true\ntask: t\n",
    'doc_to_text: !!str "x"\ntask: t\n',
    "doc_to_text: [a,\n  b]\ntask: t\n",
    "doc_to_text: [a,\nb]\ntask: t\n",
    "doc_to_text: {a: 1}\ntask: t\n",
    "task: t\ndoc_to_text: 'open\n",
    "task: t\r\ntag: x\r\n",
    "task: a\rtag: b\n",
    "task: caf\u00e9\n",
    "task: t\u2028\n",
]


def _normalised(keys: dict[str, object]) -> dict[str, object]:
    # The line reader leaves out what the index never uses: the items of a task list, class's value.
    shown = dict(keys)
    if isinstance(shown.get("task"), list):
        shown["task"] = "<list>"
    if "class" in shown:
        shown["class"] = "<present>"
    return shown


@pytest.mark.parametrize("snippet", TRICKY_SNIPPETS)
def test_line_reader_reads_keys_as_pyyaml_does(snippet: str) -> None:
    data = snippet.encode("utf-8")
    try:
        expected: dict[str, object] | str = _normalised(read_index_keys(data, full_parse=True))
    except UnreadableYaml:
        expected = "unreadable"
    try:
        ours: dict[str, object] | str = _normalised(read_index_keys(data))
    except UnreadableYaml:
        ours = "unreadable"
    assert ours == expected


def test_changed_template_is_read_again(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"_t_yaml": "task: before\n", "x.yaml": "include: _t_yaml\n"})
    assert set(index_task_folders([folder])) == {"before"}
    (folder / "_t_yaml").write_text("task: after_the_change\n", encoding="utf-8")
    assert set(index_task_folders([folder])) == {"after_the_change"}
