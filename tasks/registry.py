"""Finding tasks: registered names (built-ins, Python code, entry points), YAML paths, include paths.

Names under an include path come from a cheap index of the folder (harness.tasks.index): only the files of
the tasks that run are read in full, so folders with thousands of YAML files stay interactive. A name may
be a task, a group (lm-eval's `group:` files, expanded to their tasks) or a tag (every task carrying it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, UnknownNameError
from harness.registry import Registry
from harness.tasks.config import GENERATION_KEYS, TaskConfig, config_from_mapping, load_task_yaml
from harness.tasks.config_values import generation_kwargs
from harness.tasks.groups import GROUP_KEYS, TaskGroup, aggregate_specs
from harness.tasks.index import (
    IndexEntry,
    IndexProblem,
    TaskFolderIndex,
    index_task_folders,
    scan_task_folders,
)
from harness.tasks.suites import BUILTIN_DIR, SUITE_NAMES, suite_tasks
from harness.tasks.suites import DEFAULT_SUITE as DEFAULT_SUITE  # re-exported: `harness run`'s default
from harness.tasks.task import Task
from harness.tasks.yaml_loader import load_task_file

TaskFactory = Callable[[], Task]
TASKS: Registry[TaskFactory] = Registry("task", "harness.tasks")


def register_task(config: TaskConfig) -> TaskConfig:
    """Register a task defined in Python: `register_task(TaskConfig(task="my_task", ...))`."""
    TASKS.register(config.task, lambda: Task(config), replace=True)
    return config


def _yaml_factory(path: Path) -> TaskFactory:
    return lambda: Task(load_task_yaml(path))


def _register_builtins() -> None:
    for name, entry in index_task_folders([BUILTIN_DIR]).items():
        if name not in TASKS and entry.kind == "task" and entry.path is not None:
            TASKS.register(name, _yaml_factory(entry.path))


@dataclass(frozen=True)
class TaskOverrides:
    """Run-time settings that replace every selected task's own (lm-eval's --num_fewshot, --gen_kwargs)."""

    num_fewshot: int | None = None
    generation_kwargs: Mapping[str, Any] = field(default_factory=dict)
    system_instruction: str | None = None
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False

    def apply(self, task: Task) -> Task:
        config = task.config
        if self.num_fewshot is not None:
            if type(self.num_fewshot) is not int or self.num_fewshot < 0:
                raise HarnessError("--num-fewshot must be a whole number, 0 or more")
            config = replace(config, num_fewshot=self.num_fewshot)
        if self.generation_kwargs and config.output_type == "generate_until":
            unknown = sorted(set(self.generation_kwargs) - GENERATION_KEYS)
            if unknown:
                raise HarnessError(
                    f"--gen-kwargs: unknown key '{unknown[0]}' (known: {', '.join(sorted(GENERATION_KEYS))})"
                )
            merged = {**config.generation_kwargs, **self.generation_kwargs}
            if isinstance(merged.get("until"), str):
                merged["until"] = [merged["until"]]
            try:  # the same type checks as the YAML's own generation_kwargs
                generation_kwargs(merged, config.fewshot_delimiter, None)
            except HarnessError as error:
                raise HarnessError(f"--gen-kwargs: {error}") from None
            config = replace(config, generation_kwargs=merged)
        if self.system_instruction:
            config = replace(config, system_instruction=self.system_instruction)
        if self.apply_chat_template or self.fewshot_as_multiturn:
            if self.fewshot_as_multiturn and not (self.apply_chat_template or config.apply_chat_template):
                raise HarnessError("--fewshot-as-multiturn needs --apply-chat-template (as in lm-eval)")
            config = replace(
                config,
                apply_chat_template=True,
                fewshot_as_multiturn=self.fewshot_as_multiturn or config.fewshot_as_multiturn,
            )
        return task if config is task.config else Task(config)


@dataclass(frozen=True)
class TaskSelection:
    """What a list of task specs names: the tasks to run (each once) and the groups to report."""

    tasks: tuple[Task, ...]
    groups: tuple[TaskGroup, ...]


class _Resolver:
    """Builds tasks and groups from index entries, applying lm-eval's group overrides."""

    def __init__(self, index: Mapping[str, IndexEntry]) -> None:
        self.index = index

    def task_from_file(self, path: Path, overrides: Mapping[str, Any]) -> Task:
        raw = load_task_file(path)
        for structural in ("group", "task_list"):
            raw.pop(structural, None)
        return Task(config_from_mapping({**raw, **overrides}, source=path.resolve()))

    def entry(
        self, name: str, overrides: Mapping[str, Any], chain: tuple[str, ...]
    ) -> list[Task | TaskGroup]:
        entry = self.index[name]
        if entry.kind == "python_task":
            raise HarnessError(f"{entry.path}: class: Python task classes are not supported ({name})")
        if entry.kind == "tag":
            return [self.entry(member, {"task": member, **overrides}, chain)[0] for member in entry.members]
        if entry.path is None:
            raise HarnessError(f"task '{name}' has no file")
        if entry.kind == "group":
            if name in chain:
                raise HarnessError(f"{entry.path}: task: group '{name}' contains itself")
            return [self.group(name, load_task_file(entry.path), entry.path, overrides, (*chain, name))]
        return [self.task_from_file(entry.path, overrides)]

    def group(
        self,
        name: str,
        raw: Mapping[str, Any],
        source: Path,
        overrides: Mapping[str, Any],
        chain: tuple[str, ...],
    ) -> TaskGroup:
        # Keys that do not describe the group override the keys of every task in it.
        merged = {**{k: v for k, v in raw.items() if k not in GROUP_KEYS}, **overrides}
        listed = raw.get("task")
        items = [listed] if isinstance(listed, str | dict) else listed
        if not isinstance(items, list) or not items:
            raise HarnessError(f"{source}: task: group '{name}' needs a list of tasks")
        members: list[Task | TaskGroup] = []
        for item in items:
            members.extend(self.member(name, item, source, merged, chain))
        metadata = raw.get("metadata") or {}
        alias = raw.get("group_alias")
        return TaskGroup(
            name=name,
            members=tuple(members),
            aggregates=aggregate_specs(raw.get("aggregate_metric_list"), source),
            alias=alias if isinstance(alias, str) else None,
            version=str(metadata.get("version", "0")) if isinstance(metadata, Mapping) else "0",
        )

    def member(
        self, group: str, item: Any, source: Path, overrides: Mapping[str, Any], chain: tuple[str, ...]
    ) -> list[Task | TaskGroup]:
        if isinstance(item, str):
            if item not in self.index:
                raise HarnessError(f"{source}: task: group '{group}' names unknown task '{item}'")
            return self.entry(item, {"task": item, **overrides} if self._is_task(item) else overrides, chain)
        if not isinstance(item, Mapping):
            raise HarnessError(f"{source}: task: entries of group '{group}' must be names or mappings")
        if "group" in item:
            sub = str(item["group"])
            inline = {k: v for k, v in item.items() if k != "group"}
            if sub in self.index:
                return self.entry(sub, {**overrides, **inline}, chain)
            return [self.group(f"{group}::{sub}", item, source, overrides, (*chain, sub))]
        if "task" not in item:
            raise HarnessError(f"{source}: task: an entry of group '{group}' needs 'task' or 'group'")
        base = str(item["task"])
        item_overrides = {**overrides, **item}
        if base in self.index:
            kind_overrides = {"task": base, **item_overrides} if self._is_task(base) else item_overrides
            return self.entry(base, kind_overrides, chain)
        # An inline task config, named inside its group as lm-eval names it.
        return [Task(config_from_mapping({**item_overrides, "task": f"{group}::{base}"}, source=source))]

    def _is_task(self, name: str) -> bool:
        return self.index[name].kind in ("task", "python_task")


def _scan(include_paths: Iterable[Path]) -> TaskFolderIndex:
    folders = list(include_paths)
    for folder in folders:
        if not folder.is_dir():
            raise HarnessError(f"--include-path {folder} is not a folder")
    return scan_task_folders(folders)


def _include_index(include_paths: Iterable[Path]) -> dict[str, IndexEntry]:
    return dict(_scan(include_paths).entries)


def _explain_unindexed(name: str, problems: Iterable[IndexProblem]) -> None:
    """A name that only a broken file mentions: report that file's own error rather than "unknown task"."""
    for problem in problems:
        try:
            mentions = name in problem.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if mentions:
            load_task_file(problem.path)  # raises the file's own one-line error
            raise HarnessError(f"{problem.path}: {problem.reason}")


def task_entries(include_paths: Iterable[Path] = ()) -> dict[str, IndexEntry | None]:
    """Every name `--tasks` accepts: registered tasks (entry None) and indexed tasks, groups and tags."""
    _register_builtins()
    found: dict[str, IndexEntry | None] = dict.fromkeys(TASKS.names())
    found.update(_include_index(include_paths))
    return dict(sorted(found.items()))


def task_names(include_paths: Iterable[Path] = ()) -> list[str]:
    return list(task_entries(include_paths))


@dataclass(frozen=True)
class TaskListing:
    """One row of `harness tasks`: read from the index, so listing never loads any task's data."""

    name: str
    kind: str  # task, group, tag, python_task
    output_type: str | None  # known without reading the whole task only for registered tasks
    source: str | None
    version: str | None = None  # metadata.version, likewise; a file that fails to load is no row at all


def list_tasks(include_paths: Iterable[Path] = ()) -> list[TaskListing]:
    rows = []
    for name, entry in task_entries(include_paths).items():
        if entry is None:
            task = TASKS.get(name)()
            source = task.config.source
            where = str(source) if source else None
            rows.append(TaskListing(name, "task", task.output_type, where, task.version))
        else:
            path = str(entry.path) if entry.path is not None else None
            rows.append(TaskListing(name, entry.kind, None, path))
    return rows


def task_file_problems(include_paths: Iterable[Path] = ()) -> list[IndexProblem]:
    """YAML files under the include paths that define nothing `--tasks` can name, and why (never a row
    of `list_tasks`, so an error message cannot land in a column of the listing)."""
    return list(_scan(include_paths).problems)


def _flatten(items: Sequence[Task | TaskGroup]) -> tuple[list[Task], list[TaskGroup]]:
    tasks: list[Task] = []
    groups: list[TaskGroup] = []
    for item in items:
        if isinstance(item, TaskGroup):
            groups.append(item)
            groups.extend(item.subgroups())
            tasks.extend(item.leaf_tasks())
        else:
            tasks.append(item)
    return tasks, groups


def resolve_selection(
    specs: Iterable[str], include_paths: Iterable[Path] = (), overrides: TaskOverrides | None = None
) -> TaskSelection:
    """Each spec is a registered name, a task/group/tag under an include path, or a YAML file path."""
    _register_builtins()
    scan = _scan(include_paths)
    index = scan.entries
    resolver = _Resolver(index)
    items: list[Task | TaskGroup] = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        if spec.endswith((".yaml", ".yml")) or "/" in spec:
            path = Path(spec).expanduser()
            raw = load_task_file(path)
            if "group" in raw and "task" in raw and not isinstance(raw.get("task"), str):
                items.append(resolver.group(str(raw["group"]), raw, path.resolve(), {}, (str(raw["group"]),)))
            else:
                items.append(resolver.task_from_file(path, {}))
        elif spec in index:
            items.extend(resolver.entry(spec, {}, ()))
        elif spec in TASKS:
            items.append(TASKS.get(spec)())
        elif (suite := suite_tasks(spec)) is not None:
            items.extend(TASKS.get(name)() for name in suite)
        else:
            _explain_unindexed(spec, scan.problems)
            raise UnknownNameError("task", spec, set(TASKS.names()) | set(index) | set(SUITE_NAMES))
    tasks, groups = _flatten(items)
    unique: dict[str, Task] = {}
    for task in tasks:
        if task.name not in unique:
            unique[task.name] = overrides.apply(task) if overrides is not None else task
    if not unique:
        raise HarnessError("no tasks given")
    return TaskSelection(tuple(unique.values()), tuple(dict.fromkeys(groups)))


def resolve_tasks(specs: Iterable[str], include_paths: Iterable[Path] = ()) -> list[Task]:
    """The tasks that `specs` name, groups and tags expanded to their tasks."""
    return list(resolve_selection(specs, include_paths).tasks)
