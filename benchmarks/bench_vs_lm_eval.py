"""Wall time of `harness run` against `lm_eval` on the same model, data and tasks, side by side in one run.

Each tool runs as a fresh process, so start-up (imports, model load) is included, as a user would see it.
Runs alternate between the tools and the median of --repeats runs is reported with the ratio, and the
metric values of the two tools are compared (equal means within 1e-4 relative).

Workloads:
- `ppl`, `reading_mc`: harness's built-in tasks, copied into the form lm-eval reads.
- `hellaswag`, `mmlu`: lm-eval's ORIGINAL task YAMLs from the installed lm_eval package
  (hellaswag/hellaswag.yaml with its `process_docs` hook; mmlu/default/mmlu_high_school_biology.yaml with
  its first_n sampler on the dev split), behind a wrapper that only `include:`s the original and points
  the dataset at synthetic local documents in the real schema (benchmarks/lm_eval_tasks.py), run at 5
  shots by both tools (`--num_fewshot 5` / `--num-fewshot 5`). hellaswag's random sampler gives every
  item other examples from the training split; mmlu's first_n sampler gives every question of the subject
  the same five dev questions, a prefix harness encodes once.
- `hellaswag_0shot` (only when named): hellaswag as its YAML sets it, without examples.
- `gen_fewshot`: generate_until with a fixed few-shot prefix (harness_facts_qa with a description and
  five first_n examples, as gsm8k-style tasks fix theirs), 64 questions, greedy, exact match; the
  generations of the two tools are compared one by one (lm-eval's `--log_samples` against the store's
  samples). Harness encodes the shared prefix once and reuses its keys and values.

    python benchmarks/bench_vs_lm_eval.py [--repeats 3] [--workloads hellaswag,mmlu] [--limit N] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.lm_eval_tasks import (  # noqa: E402
    hellaswag_splits,
    lm_eval_copy,
    mmlu_splits,
    write_original_wrapper,
)
from harness.tasks.registry import BUILTIN_DIR  # noqa: E402

MMLU_SUBJECT = "high_school_biology"
SHOTS = 5
GEN_TASK = "harness_facts_qa_fewshot"
GEN_DESCRIPTION = (
    "Answer each question with a short fact: a name, a number or a few words, as in the examples. "
    "Do not explain the answer.\n\n"
)


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    task: str  # the task name both tools report
    num_fewshot: int | None = None
    default: bool = True  # run when --workloads is not given
    limit: int | None = None  # documents, unless --limit says otherwise
    generations: bool = False  # compare the two tools' generated texts one by one


@dataclass
class Row:
    workload: Workload
    lm_eval_s: list[float]
    harness_s: list[float]
    rerun_s: list[float]
    values: dict[str, tuple[float, float | None]]
    differing_generations: int | None = None  # None: not compared

    @property
    def equal(self) -> bool:
        same_values = bool(self.values) and all(_equal(ours, theirs) for ours, theirs in self.values.values())
        return same_values and not self.differing_generations


WORKLOADS = [
    Workload("ppl", "perplexity (harness_prose_ppl)", "harness_prose_ppl"),
    Workload(
        "reading_mc", "multiple choice, long shared contexts (harness_reading_mc)", "harness_reading_mc"
    ),
    Workload("hellaswag", f"hellaswag (lm-eval YAML), 60 items, {SHOTS}-shot", "hellaswag", SHOTS),
    Workload("hellaswag_0shot", "hellaswag (lm-eval YAML), 60 items, 0-shot", "hellaswag", default=False),
    Workload(
        "mmlu",
        f"mmlu_{MMLU_SUBJECT} (lm-eval YAML), 60 questions, {SHOTS}-shot",
        f"mmlu_{MMLU_SUBJECT}",
        SHOTS,
    ),
    Workload(
        "gen_fewshot",
        "generate_until, shared 5-shot prefix (harness_facts_qa, first_n), 64 questions",
        GEN_TASK,
        limit=64,
        generations=True,
    ),
]


def _fewshot_generation_task(yaml_dir: Path) -> Path:
    """harness_facts_qa with a description and five fixed (first_n) examples, under a task name of its own."""
    import yaml

    copied = lm_eval_copy(BUILTIN_DIR / "harness_facts_qa.yaml", yaml_dir)
    raw = yaml.safe_load(copied.read_text(encoding="utf-8"))
    copied.unlink()
    raw.update(
        task=GEN_TASK, description=GEN_DESCRIPTION, num_fewshot=5, fewshot_config={"sampler": "first_n"}
    )
    target = yaml_dir / f"{GEN_TASK}.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


def _prepare(workload: Workload, yaml_dir: Path) -> Path:
    """The task YAML harness runs; lm-eval finds the same task by name under yaml_dir."""
    if workload.task == "hellaswag":
        return write_original_wrapper(yaml_dir, "hellaswag", "hellaswag/hellaswag.yaml", hellaswag_splits())
    if workload.key == "gen_fewshot":
        return _fewshot_generation_task(yaml_dir)
    if workload.key == "mmlu":
        return write_original_wrapper(
            yaml_dir, workload.task, f"mmlu/default/{workload.task}.yaml", mmlu_splits(MMLU_SUBJECT)
        )
    return lm_eval_copy(BUILTIN_DIR / f"{workload.task}.yaml", yaml_dir)


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(
            f"command failed ({completed.returncode}): {' '.join(command)}\n{completed.stderr[-3000:]}"
        )
    return elapsed, completed.stdout


def _lm_eval_command(
    model_dir: Path, workload: Workload, yaml_dir: Path, limit: int | None, out: Path
) -> list[str]:
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32",
        "--tasks", workload.task, "--include_path", str(yaml_dir),
        "--batch_size", "8", "--device", "cpu", "--output_path", str(out),
    ]  # fmt: skip
    if workload.num_fewshot is not None:
        command += ["--num_fewshot", str(workload.num_fewshot)]
    if workload.generations:
        command.append("--log_samples")
    return command + (["--limit", str(limit)] if limit else [])


def _harness_command(
    model_dir: Path, workload: Workload, yaml_path: Path, store: Path, limit: int | None
) -> list[str]:
    command = [
        sys.executable, "-m", "harness.cli", "run", "--model", f"hf:{model_dir}",
        "--tasks", str(yaml_path), "--store", str(store), "--format", "json", "--quiet",
    ]  # fmt: skip
    if workload.num_fewshot is not None:
        command += ["--num-fewshot", str(workload.num_fewshot)]
    return command + (["--limit", str(limit)] if limit else [])


def _lm_eval_values(out_dir: Path, task: str) -> dict[str, float]:
    for path in sorted(out_dir.rglob("results_*.json")):
        results = json.loads(path.read_text())["results"].get(task, {})
        return {
            key.removesuffix(",none"): float(value)
            for key, value in results.items()
            if key.endswith(",none") and "_stderr" not in key and isinstance(value, int | float)
        }
    return {}


def _differing_generations(out_dir: Path, store: Path, task: str) -> int:
    """Documents whose generated text differs between lm-eval's sample log and harness's store."""
    from harness.store.result_store import ResultStore

    theirs: dict[int, str] = {}
    for path in sorted(out_dir.rglob(f"samples_{task}_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            theirs[int(sample["doc_id"])] = str(sample["filtered_resps"][0])
    samples = ResultStore(store).samples(task=task)
    ours = dict(zip(samples["doc_id"].astype(int), samples["prediction"].astype(str), strict=True))
    if not theirs or set(ours) != set(theirs):
        return max(len(ours), len(theirs), 1)
    return sum(ours[doc] != theirs[doc] for doc in theirs)


def _equal(ours: float, theirs: float | None) -> bool:
    return theirs is not None and math.isclose(ours, theirs, rel_tol=1e-4, abs_tol=1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--workloads",
        default=",".join(w.key for w in WORKLOADS if w.default),
        help=f"comma separated, from {', '.join(w.key for w in WORKLOADS)}",
    )
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the embedded model)")
    args = parser.parse_args()
    chosen = args.workloads.split(",")
    unknown = set(chosen) - {w.key for w in WORKLOADS}
    if unknown:
        parser.error(f"unknown workload {sorted(unknown)[0]}")
    if args.model is None:
        from harness.default_model import default_model_dir

        args.model = default_model_dir()
    work = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # lm-eval reads the local JSON files through `datasets`, whose Arrow cache stays with this run.
        "HF_DATASETS_CACHE": str(work / "datasets-cache"),
    }
    rows: list[Row] = []
    for workload in (w for w in WORKLOADS if w.key in chosen):
        yaml_dir = work / f"yaml_{workload.key}"
        yaml_path = _prepare(workload, yaml_dir)
        ours, theirs, reruns = [], [], []
        values: dict[str, tuple[float, float | None]] = {}
        differing: int | None = None
        limit = args.limit or workload.limit
        for repeat in range(args.repeats):
            out = work / f"lm_eval_{workload.key}_{repeat}"
            elapsed, _ = _timed(_lm_eval_command(args.model, workload, yaml_dir, limit, out), env)
            theirs.append(elapsed)
            store = work / f"store_{workload.key}_{repeat}"
            elapsed, stdout = _timed(_harness_command(args.model, workload, yaml_path, store, limit), env)
            ours.append(elapsed)
            if workload.generations:
                differing = max(differing or 0, _differing_generations(out, store, workload.task))
            # The same model again into the same store: every request is answered from the cache.
            elapsed, _ = _timed(_harness_command(args.model, workload, yaml_path, store, limit), env)
            reruns.append(elapsed)
            their_values = _lm_eval_values(out, workload.task)
            for score in json.loads(stdout):
                if score["metric"] in their_values or score["metric"] in ("acc", "acc_norm"):
                    values[score["metric"]] = (score["value"], their_values.get(score["metric"]))
            print(
                f"{workload.key} run {repeat + 1}: lm-eval {theirs[-1]:.1f} s, harness {ours[-1]:.1f} s, "
                f"harness re-run {reruns[-1]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        rows.append(Row(workload, theirs, ours, reruns, values, differing))
    print(f"model: {args.model}; repeats: {args.repeats}; limit: {args.limit or 'all'}; medians in seconds\n")
    print("| workload | lm-eval 0.4.13 | harness | ratio | harness re-run (cached) | ratio | runs | same |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        theirs_s, ours_s, rerun_s = (
            statistics.median(t) for t in (row.lm_eval_s, row.harness_s, row.rerun_s)
        )
        print(
            f"| {row.workload.label} | {theirs_s:.1f} s | {ours_s:.1f} s | {ours_s / theirs_s:.2f}x "
            f"| {rerun_s:.1f} s | {rerun_s / theirs_s:.2f}x | {args.repeats} | {row.equal} |"
        )
    print("\nEach run (seconds) and the values (harness vs lm-eval):")
    for row in rows:
        rounded = ([round(t, 1) for t in times] for times in (row.lm_eval_s, row.harness_s))
        print(f"  {row.workload.key}: lm-eval %s, harness %s" % tuple(rounded))
        for metric, (ours_value, theirs_value) in row.values.items():
            print(f"    {metric}: {ours_value} vs {theirs_value}")
        if row.differing_generations is not None:
            print(f"    generations that differ: {row.differing_generations}")
    if not all(row.equal for row in rows):
        raise SystemExit("harness and lm-eval gave different values or generations")


if __name__ == "__main__":
    main()
