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
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import pandas as pd

from harness.cli_support import (
    batch_size_arg,
    parse_generation_kwargs,
    parse_model_args,
    print_scores,
    resamples_arg,
    seed_arg,
    step_arg,
)
from harness.errors import HarnessError, HarnessWarning
from harness.progress import quiet_library_warnings

if TYPE_CHECKING:
    from harness.api import EvaluationReport

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
    from harness.distributed import current_world, init_from_environment, shutdown

    model_args = parse_model_args(args.model_args)
    if args.batch_size is not None:
        model_args["batch_size"] = args.batch_size
    # Under torchrun or accelerate launch every rank runs this command and serves its share of one run.
    joined = args.shard is None and init_from_environment()
    if args.shard is not None:
        from harness.shards import parse_shard

        args.shard = parse_shard(args.shard)  # `auto` resolved here, so the summary names the shard
    try:
        report = _evaluate_run(args, model_args)
        world = current_world()
    finally:
        if joined:
            shutdown()
    if world is not None and not world.is_main:
        return EXIT_OK  # rank 0 prints the run
    stats = report.request_stats
    if args.shard is not None:
        sys.stderr.write(
            f"shard {args.shard}: {stats.unique} distinct requests in its share, {stats.cached} already in "
            f"{args.cache[0]}, {stats.model_requests} run on the model, {report.wall_seconds:.1f} s; "
            f"no run stored (a run with --cache for every shard assembles it)\n"
        )
        return EXIT_OK
    frame = report.to_frame()
    frame.insert(1, "model", report.model)
    print_scores(frame, args.format)
    sys.stderr.write(
        f"run {report.run_id}: {stats.unique} distinct requests, {stats.cached} from cache, "
        f"{stats.model_requests} run on the model, {report.wall_seconds:.1f} s; stored in {report.store}\n"
    )
    return EXIT_OK


def _evaluate_run(args: argparse.Namespace, model_args: dict[str, str]) -> EvaluationReport:
    from harness.api import evaluate

    return evaluate(
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
        shard=args.shard,
        caches=args.cache,
    )


def _steady_arrow_memory() -> None:
    """Arrow's jemalloc pool for this process, where the build has one. A whole-store listing fills a
    few hundred megabytes once; with Arrow's default pool (mimalloc) on Linux the kernel's time to
    hand those pages over varied from 0 to 0.3 s between identical runs, with jemalloc 0.05 s."""
    import pyarrow as pa

    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def _command_scores(args: argparse.Namespace) -> int:
    from harness.store import ResultStore, default_store_path, resolve_run

    _steady_arrow_memory()

    store = ResultStore(Path(args.store) if args.store else default_store_path())
    if args.store and not store.exists():
        raise HarnessError(f"no results store at {args.store}")
    # The selector grammar `compare` and `gate` take: latest:EXP, EXP@STEP, tag:NAME, an id prefix.
    run_id = resolve_run(store, args.run) if args.run is not None else None
    table = store.scores_table(run_id=run_id)
    if run_id is not None and table.num_rows == 0:
        raise HarnessError(f"run {run_id} in {store.root} has no scores")
    print_scores(table, args.format)
    return EXIT_OK


def _command_store_check(args: argparse.Namespace) -> int:
    from harness.store import check_store, default_store_path
    from harness.store.location import is_remote

    root = Path(args.store) if args.store else default_store_path()
    if not (root.is_dir() or is_remote(root)):
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


def _command_store_compact(args: argparse.Namespace) -> int:
    from harness.store import compact_store, default_store_path
    from harness.store.location import is_remote

    root = Path(args.store) if args.store else default_store_path()
    if not (root.is_dir() or is_remote(root)):
        raise HarnessError(f"no results store at {root}")
    result = compact_store(root, runs_per_pack=args.runs_per_pack)
    print(
        f"{root}: packed {result.runs} new run(s) into {len(result.packs)} pack(s), removed "
        f"{result.removed} file(s); {result.files_before} -> {result.files_after} table files"
    )
    return EXIT_OK


def _command_tasks(args: argparse.Namespace) -> int:
    from harness.tasks.registry import list_tasks, task_file_problems

    folders = [Path(p) for p in args.include_path]
    rows = [listing.__dict__ for listing in list_tasks(folders)]
    # A file that defines no task is not a row: its error goes to stderr, one line each, not into a column.
    for problem in task_file_problems(folders):
        reason = " ".join(problem.reason.split())
        sys.stderr.write(f"harness: warning: {problem.path}: {reason} (not listed)\n")
    frame = pd.DataFrame(rows, columns=["name", "kind", "version", "output_type", "source"]).rename(
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
    "harness.audit_command": ("audit",),
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
    run.add_argument(
        "--tasks",
        default=None,
        help="names or YAML files, comma separated; suites: first_look (the default, about two minutes on "
        "two CPU cores), all (every built-in task in full)",
    )
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
    run.add_argument("--step", type=step_arg, default=None)
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
    run.add_argument("--bootstrap-resamples", type=resamples_arg(0), default=1000)
    run.add_argument("--no-cache", action="store_true", help="ignore and do not fill the request cache")
    run.add_argument(
        "--cache",
        action="append",
        default=[],
        metavar="PATH",
        help="request cache file(s) instead of the store's (repeatable): answers are read from all, "
        "new ones written to the first; one per shard, then all of them to assemble the run",
    )
    run.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="answer only shard K of N of every task's requests into --cache (no run stored); "
        "auto: from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or RANK",
    )
    run.add_argument("--format", choices=["table", "json", "csv"], default="table")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_command_run)

    scores = commands.add_parser("scores", help="show stored scores")
    scores.add_argument("--store", default=None)
    scores.add_argument(
        "--run", default=None, help="only this run: an id (or unique prefix), latest:EXP, EXP@STEP, tag:NAME"
    )
    scores.add_argument("--format", choices=["table", "json", "csv"], default="table")
    scores.set_defaults(handler=_command_scores)

    store = commands.add_parser("store", help="look after a results store")
    store_commands = store.add_subparsers(
        dest="store_command", metavar="check|compact", required=True, parser_class=_Parser
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
    compact = store_commands.add_parser(
        "compact", help="merge committed runs' part files into packs (safe while others read and write)"
    )
    compact.add_argument(
        "--store", default=None, help="results store folder (default $HARNESS_STORE or ./harness_store)"
    )
    compact.add_argument("--runs-per-pack", type=int, default=1000, help="runs per pack file (default 1000)")
    compact.set_defaults(handler=_command_store_compact)

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
    """Store warnings (a damaged part skipped) and other `HarnessWarning`s as one `harness: warning:`
    line each, once each."""
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
        if not issubclass(category, DamagedPartWarning | HarnessWarning):
            original(message, category, filename, lineno, file, line)
            return
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            stream.write(f"harness: warning: {text}\n")

    with warnings.catch_warnings():
        warnings.simplefilter("always", DamagedPartWarning)
        warnings.simplefilter("always", HarnessWarning)
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


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command parser that `args` ended in: `harness run`, `harness store check`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if isinstance(chosen, argparse.ArgumentParser):
                return _innermost(chosen, args)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`parse_args`, but arguments no command knows are reported by the command they were given to, so
    the hint names its help (`see 'harness run --help'`), not the top-level one."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(build_parser(_requested_command(argv)), argv)
    try:
        # Libraries' deprecation warnings say nothing about the evaluation: shown only with --debug.
        with quiet_library_warnings(args.debug), _store_warnings(sys.stderr):
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
