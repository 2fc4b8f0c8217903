"""Wall time of `harness run` against `lm_eval` on the same model, data and tasks, side by side in one run.

Each tool runs as a fresh process, so start-up (imports, model load) is included, as a user would see it.
Runs alternate between the tools and the median of --repeats runs is reported with the ratio.

    python benchmarks/bench_vs_lm_eval.py [--repeats 1] [--limit N] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.lm_eval_tasks import lm_eval_copy  # noqa: E402
from harness.tasks.registry import BUILTIN_DIR  # noqa: E402

WORKLOADS = {
    "perplexity (harness_prose_ppl)": "harness_prose_ppl",
    "multiple choice, long shared contexts (harness_reading_mc)": "harness_reading_mc",
}


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(
            f"command failed ({completed.returncode}): {' '.join(command)}\n{completed.stderr[-3000:]}"
        )
    return elapsed, completed.stdout


def _lm_eval_command(model_dir: Path, task: str, yaml_dir: Path, limit: int | None, out: Path) -> list[str]:
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32",
        "--tasks", task, "--include_path", str(yaml_dir),
        "--batch_size", "8", "--device", "cpu", "--output_path", str(out),
    ]  # fmt: skip
    return command + (["--limit", str(limit)] if limit else [])


def _harness_command(model_dir: Path, yaml_path: Path, store: Path, limit: int | None) -> list[str]:
    command = [
        sys.executable, "-m", "harness.cli", "run", "--model", f"hf:{model_dir}",
        "--tasks", str(yaml_path), "--store", str(store), "--format", "json", "--quiet",
    ]  # fmt: skip
    return command + (["--limit", str(limit)] if limit else [])


def _lm_eval_value(out_dir: Path, task: str, metric: str) -> float | None:
    for path in sorted(out_dir.rglob("results_*.json")):
        results = json.loads(path.read_text())["results"].get(task, {})
        if f"{metric},none" in results:
            return float(results[f"{metric},none"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the embedded model)")
    args = parser.parse_args()
    if args.model is None:
        from harness.default_model import default_model_dir

        args.model = default_model_dir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    work = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    yaml_dir = work / "yaml"
    rows = []
    for label, task in WORKLOADS.items():
        yaml_path = lm_eval_copy(BUILTIN_DIR / f"{task}.yaml", yaml_dir)
        ours, theirs, reruns = [], [], []
        values: dict[str, object] = {}
        for repeat in range(args.repeats):
            out = work / f"lm_eval_{task}_{repeat}"
            elapsed, _ = _timed(_lm_eval_command(args.model, task, yaml_dir, args.limit, out), env)
            theirs.append(elapsed)
            store = work / f"store_{task}_{repeat}"
            elapsed, stdout = _timed(_harness_command(args.model, yaml_path, store, args.limit), env)
            ours.append(elapsed)
            # The same model again into the same store: every request is answered from the cache.
            elapsed, _ = _timed(_harness_command(args.model, yaml_path, store, args.limit), env)
            reruns.append(elapsed)
            for score in json.loads(stdout):
                values[score["metric"]] = (score["value"], _lm_eval_value(out, task, score["metric"]))
        lm_eval_median = statistics.median(theirs)
        rows.append((label, lm_eval_median, statistics.median(ours), statistics.median(reruns), values))
        print(f"{label}: lm-eval {theirs}, harness {ours}, harness re-run {reruns}", file=sys.stderr)
    print(f"model: {args.model}; repeats: {args.repeats}; limit: {args.limit or 'all'}; medians in seconds\n")
    print("| workload | lm-eval 0.4.13 | harness | ratio | harness re-run (cached) | ratio |")
    print("|---|---|---|---|---|---|")
    for label, theirs_s, ours_s, rerun_s, _ in rows:
        print(
            f"| {label} | {theirs_s:.1f} s | {ours_s:.1f} s | {ours_s / theirs_s:.2f}x "
            f"| {rerun_s:.1f} s | {rerun_s / theirs_s:.2f}x |"
        )
    print("\nSame numbers (harness vs lm-eval):")
    for label, *_, values in rows:
        for metric, (ours_value, theirs_value) in values.items():  # type: ignore[attr-defined]
            print(f"  {label} {metric}: {ours_value} vs {theirs_value}")


if __name__ == "__main__":
    main()
