"""The `harness` command line. Exit codes: 0 success, 1 a gate found a regression, 2 bad usage or input."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import pandas as pd

from harness.cli_support import (
    batch_size_arg,
    format_scores,
    parse_generation_kwargs,
    parse_model_args,
    seed_arg,
)
from harness.errors import HarnessError

EXIT_OK = 0
EXIT_BAD_INPUT = 2


EXIT_FOUND = 1  # `harness store check` found files no reader can use (and did not move them)
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command ended by SIGPIPE: `harness scores | head -1`
# Errors of the filesystem a user can fix (a read-only or full store, a folder they may not write to):
# one line, like any bad input, instead of a traceback.
USER_FIXABLE_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2, and flags are never
    abbreviated (`--task` must not silently mean `--tasks`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

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


def _command_store_check(args: argparse.Namespace) -> int:
    from harness.store import check_store, default_store_path

    root = Path(args.store) if args.store else default_store_path()
    if not root.is_dir():
        raise HarnessError(f"no results store at {root}")
    result = check_store(root, repair=args.repair)
    for finding in result.findings:
        print(finding.describe(root))
    if result.clean:
        print(f"{root}: clean ({result.runs} runs, no damaged or orphaned parts, no stale temp files)")
        return EXIT_OK
    counts = ", ".join(
        f"{len(result.of_kind(kind))} {kind}"
        for kind in ("damaged", "orphaned", "stale temp")
        if result.of_kind(kind)
    )
    if result.repaired:
        print(f"{root}: moved {counts} file(s) into {result.quarantine}; {result.runs} runs read cleanly")
        return EXIT_OK
    print(f"{root}: found {counts} file(s); `harness store check --store {root} --repair` moves them aside")
    return EXIT_FOUND


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
BUILT_IN_COMMANDS = ("run", "scores", "store", "tasks")


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
    run.add_argument("--batch-size", type=batch_size_arg, default=None, help="N or auto")
    run.add_argument("--seed", type=seed_arg, default=0, help="0 to 4294967295 (default 0)")
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

    store = commands.add_parser("store", help="look after a results store")
    store_commands = store.add_subparsers(
        dest="store_command", metavar="check", required=True, parser_class=_Parser
    )
    check = store_commands.add_parser(
        "check", help="list damaged parts, orphaned parts and stale temp files (exit 1 if any)"
    )
    check.add_argument(
        "--store", default=None, help="results store folder (default $HARNESS_STORE or ./harness_store)"
    )
    check.add_argument(
        "--repair", action="store_true", help="move what was found into STORE/_quarantine/ (never deleted)"
    )
    check.set_defaults(handler=_command_store_check)

    tasks = commands.add_parser("tasks", help="list available tasks")
    tasks.add_argument("--include-path", action="append", default=[])
    tasks.add_argument("--format", choices=["table", "json"], default="table")
    tasks.set_defaults(handler=_command_tasks)

    known = {name for names in COMMAND_MODULES.values() for name in names}
    for module_name, names in COMMAND_MODULES.items():
        if command is None or command not in known | set(BUILT_IN_COMMANDS) or command in names:
            importlib.import_module(module_name).add_parser(commands)
    return parser


@contextlib.contextmanager
def _store_warnings(stream: TextIO) -> Iterator[None]:
    """Store warnings (a damaged part skipped) as one `harness: warning:` line each, once each."""
    from harness.store import DamagedPartWarning

    shown: set[str] = set()
    original = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not issubclass(category, DamagedPartWarning):
            original(message, category, filename, lineno, file, line)
            return
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            stream.write(f"harness: warning: {text}\n")

    with warnings.catch_warnings():
        warnings.simplefilter("always", DamagedPartWarning)
        warnings.showwarning = show
        yield


def _error(message: str, debug: bool, exc: BaseException | None = None) -> int:
    if debug and exc is not None:
        traceback.print_exception(exc)
    sys.stderr.write(f"harness: error: {message}\n")
    return EXIT_BAD_INPUT


def _quiet_stdout() -> None:
    # The reader of our output is gone (`| head -1`): point stdout at /dev/null so the interpreter's
    # final flush does not complain about the pipe a second time.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(_requested_command(argv)).parse_args(argv)
    try:
        with _store_warnings(sys.stderr):
            code = int(args.handler(args))
        # Flushed here, not at interpreter exit, so a reader that has gone away is caught below.
        sys.stdout.flush()
        return code
    except HarnessError as error:
        message = str(error).splitlines()[0] if str(error) else repr(error)
        return _error(message, args.debug, error)
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as error:
        if error.errno not in USER_FIXABLE_ERRNOS:
            raise
        where = f": {error.filename}" if error.filename else ""
        return _error(f"{error.strerror or error}{where}", args.debug, error)
    except KeyboardInterrupt:
        sys.stderr.write("harness: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
