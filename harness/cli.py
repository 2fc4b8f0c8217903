"""The `harness` command line. Exit codes: 0 success, 1 a gate found a regression, 2 bad usage or input."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pandas as pd

from harness.cli_support import format_scores, parse_generation_kwargs, parse_model_args
from harness.errors import HarnessError

EXIT_OK = 0
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"harness: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _command_run(args: argparse.Namespace) -> int:
    from harness.api import evaluate

    model_args = parse_model_args(args.model_args)
    if args.batch_size is not None:
        model_args["batch_size"] = args.batch_size
    report = evaluate(
        args.model,
        args.tasks,
        model_args=model_args,
        include_paths=args.include_path,
        store=args.store,
        experiment=args.experiment,
        step=args.step,
        limit=args.limit,
        seed=args.seed,
        bootstrap_resamples=args.bootstrap_resamples,
        use_cache=not args.no_cache,
        show_progress=not args.quiet,
        num_fewshot=args.num_fewshot,
        system_instruction=args.system_instruction,
        apply_chat_template=args.apply_chat_template,
        fewshot_as_multiturn=args.fewshot_as_multiturn,
        generation_kwargs=parse_generation_kwargs(args.gen_kwargs),
        tags=args.tag,
    )
    frame = report.to_frame()
    frame.insert(1, "model", report.model)
    print(format_scores(frame, args.format))
    stats = report.request_stats
    sys.stderr.write(
        f"run {report.run_id}: {stats.unique} distinct requests, {stats.cached} from cache, "
        f"{stats.model_requests} run on the model, {report.wall_seconds:.1f} s; stored in {report.store}\n"
    )
    return EXIT_OK


def _command_scores(args: argparse.Namespace) -> int:
    from harness.store import ResultStore, default_store_path

    store = ResultStore(Path(args.store) if args.store else default_store_path())
    if args.store and not store.exists():
        raise HarnessError(f"no results store at {args.store}")
    frame = store.scores(run_id=args.run)
    if args.run and frame.empty:
        raise HarnessError(f"no run '{args.run}' in {store.root}")
    print(format_scores(frame, args.format))
    return EXIT_OK


def _command_tasks(args: argparse.Namespace) -> int:
    from harness.tasks.registry import list_tasks

    rows = [listing.__dict__ for listing in list_tasks([Path(p) for p in args.include_path])]
    frame = pd.DataFrame(rows, columns=["name", "kind", "output_type", "source"]).rename(
        columns={"name": "task"}
    )
    if args.format == "table":
        print(frame.fillna("").to_string(index=False))
    else:
        print(frame.to_json(orient="records"))
    return EXIT_OK


# Further commands live in their own modules, each with `add_parser(commands)`; one line here per module,
# naming the commands it adds, so `harness run` does not import what `gate` or `ratings` need.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "harness.gate_command": ("compare", "gate", "watch"),
    "harness.leaderboard_command": ("leaderboard",),
    "harness.ratings_command": ("ratings",),
    "harness.score_command": ("score",),
}
BUILT_IN_COMMANDS = ("run", "scores", "tasks")


def _requested_command(argv: Sequence[str] | None) -> str | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    return next((argument for argument in arguments if not argument.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or, given the command about to run, only the modules that command needs."""
    parser = _Parser(prog="harness", description="Evaluate language models; keep every result.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="evaluate a model on tasks and store the run")
    run.add_argument(
        "--model", default=None, help="ADAPTER:TARGET, e.g. hf:./checkpoint-1000 (default: SmolLM2)"
    )
    run.add_argument("--model-args", nargs="+", default=[], metavar="KEY=VALUE")
    run.add_argument("--tasks", default=None, help="names or YAML files, comma separated")
    run.add_argument(
        "--num-fewshot", type=int, default=None, help="few-shot examples per prompt, for every task"
    )
    run.add_argument(
        "--system-instruction", default=None, help="text placed before every task's description and examples"
    )
    run.add_argument(
        "--apply-chat-template",
        action="store_true",
        help="build every task's prompts with the model's chat template (all output types, as lm-eval)",
    )
    run.add_argument(
        "--fewshot-as-multiturn",
        action="store_true",
        help="with --apply-chat-template: few-shot examples as separate user/assistant turns",
    )
    run.add_argument(
        "--gen-kwargs",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="generation settings for every generate_until task (temperature=0 max_gen_toks=64, or a,b)",
    )
    run.add_argument("--include-path", action="append", default=[], help="folder of task YAML files")
    run.add_argument(
        "--store", default=None, help="results store folder (default $HARNESS_STORE or ./harness_store)"
    )
    run.add_argument("--experiment", default=None)
    run.add_argument("--step", type=int, default=None)
    run.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="NAME",
        help="tag the run (repeatable); select it with tag:NAME",
    )
    run.add_argument("--limit", type=int, default=None, help="evaluate only the first N documents per task")
    run.add_argument("--batch-size", default=None, help="N or auto")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--bootstrap-resamples", type=int, default=1000)
    run.add_argument("--no-cache", action="store_true", help="ignore and do not fill the request cache")
    run.add_argument("--format", choices=["table", "json", "csv"], default="table")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_command_run)

    scores = commands.add_parser("scores", help="show stored scores")
    scores.add_argument("--store", default=None)
    scores.add_argument("--run", default=None, help="only this run id")
    scores.add_argument("--format", choices=["table", "json", "csv"], default="table")
    scores.set_defaults(handler=_command_scores)

    tasks = commands.add_parser("tasks", help="list available tasks")
    tasks.add_argument("--include-path", action="append", default=[])
    tasks.add_argument("--format", choices=["table", "json"], default="table")
    tasks.set_defaults(handler=_command_tasks)

    known = {name for names in COMMAND_MODULES.values() for name in names}
    for module_name, names in COMMAND_MODULES.items():
        if command is None or command not in known | set(BUILT_IN_COMMANDS) or command in names:
            importlib.import_module(module_name).add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(_requested_command(argv)).parse_args(argv)
    try:
        return int(args.handler(args))
    except HarnessError as error:
        if args.debug:
            traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else repr(error)
        sys.stderr.write(f"harness: error: {message}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("harness: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
