"""Named suites of built-in tasks: what `harness run` evaluates by default, and the full built-in suite.

`--tasks first_look` (the default) is sized for a first look at a model in about two minutes on two CPU
cores, and still shows every metric family: perplexity, multiple-choice accuracy, classification F1,
generation exact match, BLEU and ROUGE, and fairness rows. Its tasks are the built-in tasks on a few
documents each, under their own names, so their numbers are never mistaken for (or ranked against) the
full tasks' numbers. `--tasks all` runs every built-in task on all of its documents.

A task, group or tag of the same name (from --include-path or a registration) wins over a suite.
"""

from __future__ import annotations

from pathlib import Path

from harness.tasks.index import index_task_folders

BUILTIN_DIR = Path(__file__).parent / "builtin"
FIRST_LOOK_PREFIX = "first_look_"

# The suite `harness run` evaluates when no --tasks are given.
DEFAULT_SUITE = (
    "first_look_prose_ppl",
    "first_look_reading_mc",
    "first_look_tone",
    "first_look_facts_qa",
    "first_look_stereotype_pairs",
)
SUITE_NAMES = ("first_look", "default", "all")


def builtin_task_names() -> list[str]:
    """Every task YAML shipped in the package, first-look variants included."""
    return sorted(name for name, entry in index_task_folders([BUILTIN_DIR]).items() if entry.kind == "task")


def suite_tasks(name: str) -> tuple[str, ...] | None:
    """The task names of suite `name`, or None when `name` is no suite."""
    if name in ("first_look", "default"):
        return DEFAULT_SUITE
    if name == "all":
        return tuple(task for task in builtin_task_names() if not task.startswith(FIRST_LOOK_PREFIX))
    return None


__all__ = ["BUILTIN_DIR", "DEFAULT_SUITE", "SUITE_NAMES", "builtin_task_names", "suite_tasks"]
