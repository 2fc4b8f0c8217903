"""Generation throughput of the `openai` adapter against an OpenAI-compatible server, by concurrency.

By default it builds the tiny test model, serves it with `transformers serve --continuous-batching` on a
free loopback port (stopped at the end, whatever happens), and sends the same distinct prompts at each
concurrency level; `--base-url URL --model NAME` measures a server that is already running instead.

    python benchmarks/bench_openai_concurrency.py --concurrency 1,2,4,8,16 --requests 48 --max-tokens 64
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.adapters.openai import load_openai_adapter
from harness.requests import GenerationRequest, GenerationSettings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(model_dir: Path, *, continuous_batching: bool, startup_timeout: float = 300) -> Iterator[str]:
    """`transformers serve` for `model_dir` on 127.0.0.1; yields the base URL and always stops the server."""
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent)) or "transformers"
    port = _free_port()
    command = [executable, "serve", "--host", "127.0.0.1", "--port", str(port), str(model_dir)]
    if continuous_batching:
        command.insert(2, "--continuous-batching")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        tail = log.read().decode("utf-8", "replace")[-2000:]
                        raise SystemExit(f"transformers serve did not start:\n{tail}") from None
                    time.sleep(0.25)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def measure(
    base_url: str, model: str, concurrency_levels: Sequence[int], requests: int, max_tokens: int
) -> list[tuple[int, float, int]]:
    """(concurrency, seconds, generated tokens) for each level, after one warm-up request."""
    settings = GenerationSettings(max_tokens=max_tokens)
    prompts = [
        GenerationRequest(f"Story {i}: once upon a time, in a village", settings) for i in range(requests)
    ]
    warm_up = load_openai_adapter(model, {"base_url": base_url, "timeout": "600"})
    warm_up.generate([GenerationRequest("warm up", settings)])  # model load, kernels, batching set-up
    rows = []
    for concurrency in concurrency_levels:
        adapter = load_openai_adapter(model, {"base_url": base_url, "concurrency": str(concurrency)})
        started = time.perf_counter()
        results = adapter.generate(prompts)
        rows.append((concurrency, time.perf_counter() - started, sum(r.num_tokens for r in results)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="1,2,4,8,16", help="comma-separated levels")
    parser.add_argument("--requests", type=int, default=48, help="generation requests per level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model-dir", type=Path, help="model folder to serve (default: the tiny test model)")
    parser.add_argument("--base-url", help="an already running server; needs --model")
    parser.add_argument("--model", help="model name to request from --base-url")
    parser.add_argument("--no-continuous-batching", action="store_true", help="serve requests one by one")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.concurrency.split(",")]

    if args.base_url:
        if not args.model:
            parser.error("--base-url needs --model")
        rows = measure(args.base_url, args.model, levels, args.requests, args.max_tokens)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            model_dir = args.model_dir
            if model_dir is None:
                from harness.tiny_model import build_tiny_model

                model_dir = build_tiny_model(Path(scratch) / "tiny-model")
            cb = not args.no_continuous_batching
            with serve(model_dir, continuous_batching=cb) as base_url:
                rows = measure(base_url, str(model_dir), levels, args.requests, args.max_tokens)

    print(
        f"{'concurrency':>11} {'seconds':>8} {'tokens':>7} {'tokens/s':>9} {'requests/s':>10} {'speed-up':>8}"
    )
    base_rate = rows[0][2] / rows[0][1]
    for concurrency, seconds, tokens in rows:
        rate = tokens / seconds
        print(
            f"{concurrency:>11} {seconds:>8.2f} {tokens:>7} {rate:>9.1f} "
            f"{args.requests / seconds:>10.2f} {rate / base_rate:>7.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
