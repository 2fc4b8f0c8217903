"""Task definitions: lm-eval compatible YAML tasks, Python registration, and the built-in suite."""

from harness.tasks.config import MetricSpec, TaskConfig, config_from_mapping, load_task_yaml
from harness.tasks.registry import (
    DEFAULT_SUITE,
    TASKS,
    TaskListing,
    TaskSelection,
    list_tasks,
    register_task,
    resolve_selection,
    resolve_tasks,
    task_names,
)
from harness.tasks.task import Task, TaskInstance

__all__ = [
    "DEFAULT_SUITE",
    "TASKS",
    "MetricSpec",
    "Task",
    "TaskConfig",
    "TaskInstance",
    "TaskListing",
    "TaskSelection",
    "config_from_mapping",
    "list_tasks",
    "load_task_yaml",
    "register_task",
    "resolve_selection",
    "resolve_tasks",
    "task_names",
]
