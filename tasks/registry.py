"""Finding tasks: registered names (built-ins, Python code, entry points), YAML paths, include paths."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from harness.errors import HarnessError, UnknownNameError
from harness.registry import Registry
from harness.tasks.config import TaskConfig, load_task_yaml
from harness.tasks.task import Task

TaskFactory = Callable[[], Task]
TASKS: Registry[TaskFactory] = Registry("task", "harness.tasks")

BUILTIN_DIR = Path(__file__).parent / "builtin"
# The suite `harness run` evaluates when no --tasks are given.
DEFAULT_SUITE = ("harness_prose_ppl", "harness_reading_mc", "harness_tone", "harness_facts_qa")


def register_task(config: TaskConfig) -> TaskConfig:
    """Register a task defined in Python: `register_task(TaskConfig(task="my_task", ...))`."""
    TASKS.register(config.task, lambda: Task(config), replace=True)
    return config


def _yaml_factory(path: Path) -> TaskFactory:
    return lambda: Task(load_task_yaml(path))


def _task_name_in(path: Path) -> str | None:
    """Read only the `task:` line, so listing many YAML files stays cheap and tolerates broken ones."""
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("task:"):
                return line.split(":", 1)[1].strip().strip("'\"")
    except OSError:
        return None
    return None


def _index_folder(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
        name = _task_name_in(path)
        if name:
            found.setdefault(name, path)
    return found


def _register_builtins() -> None:
    for name, path in _index_folder(BUILTIN_DIR).items():
        if name not in TASKS:
            TASKS.register(name, _yaml_factory(path))


def task_names(include_paths: Iterable[Path] = ()) -> list[str]:
    _register_builtins()
    names = set(TASKS.names())
    for folder in include_paths:
        names.update(_index_folder(folder))
    return sorted(names)


def resolve_tasks(specs: Iterable[str], include_paths: Iterable[Path] = ()) -> list[Task]:
    """Each spec is a registered name, a name found under an include path, or a YAML file path."""
    _register_builtins()
    include_index: dict[str, Path] = {}
    for folder in include_paths:
        if not folder.is_dir():
            raise HarnessError(f"--include-path {folder} is not a folder")
        for name, path in _index_folder(folder).items():
            include_index.setdefault(name, path)
    tasks: list[Task] = []
    seen: set[str] = set()
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        if spec.endswith((".yaml", ".yml")) or "/" in spec:
            task = Task(load_task_yaml(Path(spec)))
        elif spec in include_index:
            task = _yaml_factory(include_index[spec])()
        elif spec in TASKS:
            task = TASKS.get(spec)()
        else:
            raise UnknownNameError("task", spec, set(TASKS.names()) | set(include_index))
        if task.name in seen:
            continue
        seen.add(task.name)
        tasks.append(task)
    if not tasks:
        raise HarnessError("no tasks given")
    return tasks
