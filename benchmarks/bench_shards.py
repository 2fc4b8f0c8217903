"""N shard processes (`harness run --shard K/N`, then a merge run) against one process, on the same work.

Each repeat starts from empty caches and times whole commands, start-up included, as a scheduler would
run them: one `harness run --no-cache`; N concurrent shard processes followed by the merge run that
assembles their caches; and, with --torchrun, one `torchrun --nproc_per_node N` run. The threads of the
machine are divided between the concurrent processes (OMP_NUM_THREADS), as torchrun does. By default
it builds a random-weight Llama model of the size given, so no download is needed; --model evaluates
any other (`hf:./checkpoint`).

    python benchmarks/bench_shards.py --shards 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness.tiny_model import build_tiny_model


def _harness(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", *arguments]


def _timed(commands: Sequence[Sequence[str]], environment: dict[str, str]) -> float:
    """Seconds until every command, started together, has finished (each must succeed)."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for command in commands
    ]
    failures = []
    for command, process in zip(commands, processes, strict=True):
        _, err = process.communicate()
        if process.returncode != 0:
            failures.append(f"{' '.join(command)}\n{err[-2000:]}")
    if failures:
        raise SystemExit("a command failed:\n" + "\n".join(failures))
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="ADAPTER:TARGET (default: a random Llama, built here)")
    parser.add_argument("--hidden-size", type=int, default=256, help="of the model built here")
    parser.add_argument("--layers", type=int, default=4, help="of the model built here")
    parser.add_argument("--tasks", default="harness_reading_mc,harness_prose_ppl")
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torchrun", action="store_true", help="also time one torchrun run of N ranks")
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    base = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HARNESS_RECORD_ARGV": "0",
    }
    shared = {**base, "OMP_NUM_THREADS": str(max(1, cores // args.shards))}
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as scratch:
        root = Path(scratch)
        model = args.model
        if model is None:
            directory = build_tiny_model(
                root / "model",
                hidden_size=args.hidden_size,
                num_layers=args.layers,
                max_position_embeddings=512,
            )
            model = f"hf:{directory}"
        work = ["--model", model, "--tasks", args.tasks, "--quiet", "--bootstrap-resamples", "0"]
        if args.limit is not None:
            work += ["--limit", str(args.limit)]
        times: dict[str, list[float]] = {"one process": [], "shards": [], "merge": [], "shards + merge": []}
        if args.torchrun:
            times["torchrun"] = []
        for repeat in range(args.repeats):
            folder = root / f"repeat-{repeat}"
            times["one process"].append(
                _timed([_harness(*work, "--no-cache", "--store", str(folder / "single"))], base)
            )
            caches = [folder / "caches" / f"shard-{index}.sqlite" for index in range(args.shards)]
            shard_commands = [
                _harness(*work, "--shard", f"{index}/{args.shards}", "--cache", str(cache))
                for index, cache in enumerate(caches)
            ]
            times["shards"].append(_timed(shard_commands, shared))
            merge = _harness(
                *work, "--store", str(folder / "merged"), *[f"--cache={cache}" for cache in caches]
            )
            times["merge"].append(_timed([merge], base))
            times["shards + merge"].append(times["shards"][-1] + times["merge"][-1])
            if args.torchrun:
                torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
                command = [
                    torchrun,
                    "--standalone",
                    "--nproc_per_node",
                    str(args.shards),
                    "-m",
                    "harness.cli",
                ]
                command += ["run", *work, "--no-cache", "--store", str(folder / "torchrun")]
                times["torchrun"].append(_timed([command], shared))
            print(
                f"repeat {repeat + 1}/{args.repeats}: "
                + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items())
            )

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{args.shards} shards vs one process, {cores} cores, {model}, {args.tasks}, limit {args.limit}")
    print(f"{'':16} {'median s':>9}")
    for name, value in medians.items():
        print(f"{name:16} {value:9.1f}")
    print(f"ratio one process / (shards + merge): {medians['one process'] / medians['shards + merge']:.2f}x")
    if args.torchrun:
        print(f"ratio one process / torchrun: {medians['one process'] / medians['torchrun']:.2f}x")


if __name__ == "__main__":
    main()
