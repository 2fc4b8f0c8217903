"""Time to index lm-eval's whole task folder: lm-eval's `TaskManager()` against harness.tasks.index.

`TaskManager()` is what every `lm_eval run` and `lm_eval ls` pays before it does anything else: it walks
the folder and builds the name index (tasks, groups, tags). Both indexers run in this one process, after
their imports, alternating, and the median of --repeats runs is reported with the ratio. The include
cache of harness.tasks.index is cleared before each of its cold runs, so each costs what a fresh process
pays; the warm row is a second index in the same process. Coverage is the share of lm-eval's names that
the harness index has, with the same kind.

    python benchmarks/bench_task_index.py [--repeats 3] [--folder DIR]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness.tasks.index import TaskFolderIndex, clear_include_cache, scan_task_folders

LM_EVAL_KINDS = {"TASK": "task", "GROUP": "group", "TAG": "tag", "PY_TASK": "python_task"}


def _timed(run: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """(wall seconds, CPU seconds of this process) and the result: CPU time shows through a busy machine."""
    gc.collect()  # garbage left by the previous run is not charged to this one
    started, started_cpu = time.perf_counter(), time.process_time()
    result = run()
    return (time.perf_counter() - started, time.process_time() - started_cpu), result


def _cold_scan(folder: Path, full_parse: bool = False) -> TaskFolderIndex:
    clear_include_cache()
    return scan_task_folders([folder], full_parse=full_parse)


def _coverage(task_manager: Any, ours: TaskFolderIndex) -> str:
    theirs = task_manager.task_index
    in_both = [name for name in theirs if name in ours.entries]
    same_kind = [name for name in in_both if LM_EVAL_KINDS[theirs[name].kind.name] == ours.entries[name].kind]
    missing = sorted(set(theirs) - set(ours.entries))
    extra = sorted(set(ours.entries) - set(theirs))
    lines = [
        f"coverage: {len(in_both)} of lm-eval's {len(theirs)} names ({len(in_both) / len(theirs):.2%}); "
        f"same kind: {len(same_kind)}; names lm-eval does not have: {len(extra)}",
    ]
    if missing:
        lines.append(f"missing: {', '.join(missing[:30])}{' ...' if len(missing) > 30 else ''}")
    if extra:
        lines.append(f"extra: {', '.join(extra[:30])}{' ...' if len(extra) > 30 else ''}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="task folder (default: lm-eval's own)")
    args = parser.parse_args()

    import lm_eval.tasks

    folder = args.folder or Path(lm_eval.tasks.__file__).parent

    def lm_eval_index() -> Any:
        if args.folder is None:
            return lm_eval.tasks.TaskManager()
        return lm_eval.tasks.TaskManager(include_path=str(folder), include_defaults=False)

    lm_eval_label = f"lm-eval {version('lm_eval')} TaskManager()"
    ours_label = "harness.tasks.index"
    warm_label = "harness.tasks.index, templates already cached in-process"
    full_label = "harness.tasks.index, full_parse=True"
    labels = (lm_eval_label, ours_label, warm_label, full_label)
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    task_manager: Any = None
    ours: TaskFolderIndex | None = None
    for _ in range(args.repeats):
        elapsed, task_manager = _timed(lm_eval_index)
        runs[lm_eval_label].append(elapsed)
        elapsed, ours = _timed(lambda: _cold_scan(folder))
        runs[ours_label].append(elapsed)
        elapsed, _ = _timed(lambda: scan_task_folders([folder]))
        runs[warm_label].append(elapsed)
        elapsed, _ = _timed(lambda: _cold_scan(folder, full_parse=True))
        runs[full_label].append(elapsed)
    assert ours is not None

    files = sum(1 for path in folder.rglob("*.yaml") if "__pycache__" not in path.parts)
    print(f"folder: {folder} ({files} *.yaml files); repeats: {args.repeats}; medians in seconds\n")
    print("| indexer | median wall | ratio to lm-eval | median CPU | wall of each run |")
    print("|---|---|---|---|---|")
    lm_eval_median = statistics.median(wall for wall, _ in runs[lm_eval_label])
    for label, times in runs.items():
        median = statistics.median(wall for wall, _ in times)
        cpu = statistics.median(cpu for _, cpu in times)
        listed = ", ".join(f"{wall:.2f}" for wall, _ in times)
        print(f"| {label} | {median:.2f} s | {median / lm_eval_median:.2f}x | {cpu:.2f} s | {listed} |")
    print()
    print(_coverage(task_manager, ours))
    print(f"files skipped (listed by scan_task_folders(...).problems): {len(ours.problems)}")


if __name__ == "__main__":
    main()
