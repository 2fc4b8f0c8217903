"""`harness compare`, `harness gate` and `harness watch`, and the gate's report formats.

Gate exit codes: 0 every rule passed, 1 a rule found a regression, 2 bad usage or input (raised as
HarnessError; `harness.cli` prints it as one line). Report files are written only once the gate has
a verdict, so bad input never leaves a half-written report behind.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.cli_support import (
    batch_size_arg,
    finite_float_arg,
    parse_model_args,
    resamples_arg,
    seconds_arg,
    seed_arg,
)
from harness.compare import (
    REPORT_COLUMNS,
    MetricComparison,
    compare,
    markdown_cell,
    markdown_table,
    report_cells,
)
from harness.errors import HarnessError
from harness.files import atomic_write_text
from harness.gate import GateCheck, GateConfig, GateResult, GateRule, load_gate_config, run_gate
from harness.store import SELECTOR_HELP, ResultStore, default_store_path, normalise_tags

__all__ = ["add_parser", "gate_json", "gate_junit", "gate_markdown", "gate_table"]


# -- report formats ---------------------------------------------------------------------------------


def describe(comparison: MetricComparison) -> Sequence[str]:
    """Cells of one row of the human-readable comparison table (the leaderboard's Compare page and
    its Markdown report use the same cells)."""
    return report_cells(vars(comparison))


COLUMNS = REPORT_COLUMNS


def _finite(value: float | None) -> float | None:
    # JSON has no NaN or infinity; null says "no number" in every consumer.
    return value if value is not None and math.isfinite(value) else None


def _check_cells(check: GateCheck) -> list[str]:
    return ["PASS" if check.passed else "FAIL", *describe(check.comparison), check.rule.describe()]


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _title(result: GateResult) -> str:
    verdict = "passed" if result.passed else f"FAILED ({len(result.failures)} of {len(result.checks)} rules)"
    return f"harness gate {verdict}: candidate {result.candidate_run} vs baseline {result.baseline_run}"


def gate_table(result: GateResult) -> str:
    """The terminal report: one line per rule, then the reason of every failure."""
    table = _text_table(["result", *COLUMNS, "rule"], [_check_cells(check) for check in result.checks])
    reasons = [f"FAIL {c.task}/{c.metric}: {c.reason}" for c in result.failures]
    return "\n".join([_title(result), "", table, *(["", *reasons] if reasons else [])])


def gate_markdown(result: GateResult) -> str:
    """A pull-request comment: verdict, the rules table (GitHub-flavoured Markdown), failure reasons."""
    icon = "✅" if result.passed else "❌"
    header = ["", *COLUMNS, "rule"]
    rows = [["✅" if c.passed else "❌", *_check_cells(c)[1:]] for c in result.checks]
    lines = [
        f"### {icon} {markdown_cell(_title(result))}",
        "",
        f"Baseline `{result.baseline_selector}` → `{result.baseline_run}`, candidate "
        f"`{result.candidate_selector}` → `{result.candidate_run}`. Differences are candidate − baseline "
        f"on shared samples; {result.comparison.resamples} paired bootstrap resamples, seed "
        f"{result.comparison.seed}.",
        "",
        markdown_table(header, rows),
    ]
    if result.failures:
        lines += ["", "**Regressions**", ""]
        lines += [f"- `{c.task}/{c.metric}`: {markdown_cell(c.reason)}" for c in result.failures]
    return "\n".join(lines) + "\n"


def gate_junit(result: GateResult, *, timestamp: datetime | None = None, hostname: str | None = None) -> str:
    """JUnit XML in the Ant/Jenkins schema: one testsuite, one testcase per gated task/metric."""
    moment = (timestamp or datetime.now(UTC)).astimezone(UTC)
    root = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(
        root,
        "testsuite",
        {
            "name": f"harness gate {result.candidate_run} vs {result.baseline_run}",
            "package": "harness.gate",
            "id": "0",
            # The Ant schema's timestamp has no time zone; it is UTC.
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": hostname or platform.node() or "localhost",
            "tests": str(len(result.checks)),
            "failures": str(len(result.failures)),
            "errors": "0",
            "time": "0",
        },
    )
    properties = ElementTree.SubElement(suite, "properties")
    for name, value in (
        ("baseline", result.baseline_run),
        ("candidate", result.candidate_run),
        ("baseline_selector", result.baseline_selector),
        ("candidate_selector", result.candidate_selector),
        ("bootstrap_resamples", str(result.comparison.resamples)),
        ("seed", str(result.comparison.seed)),
    ):
        ElementTree.SubElement(properties, "property", {"name": name, "value": value})
    for check in result.checks:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            {"classname": f"harness.gate.{check.task}", "name": check.metric, "time": "0"},
        )
        if not check.passed:
            failure = ElementTree.SubElement(case, "failure", {"message": check.reason, "type": "regression"})
            failure.text = _failure_text(check.comparison, check)
    ElementTree.SubElement(suite, "system-out").text = gate_table(result)
    ElementTree.SubElement(suite, "system-err").text = ""
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _failure_text(comparison: MetricComparison, check: GateCheck) -> str:
    return (
        f"{comparison.task}/{comparison.metric}: baseline {comparison.baseline:.6g}, candidate "
        f"{comparison.candidate:.6g} on {comparison.n_shared} shared samples; difference "
        f"{comparison.difference:+.6g} ({comparison.confidence:.0%} CI {comparison.ci_low:+.6g} to "
        f"{comparison.ci_high:+.6g}), p = {comparison.p_value:.4g} ({comparison.test}); "
        f"rule: {check.rule.describe()}"
    )


def gate_json(result: GateResult) -> dict[str, Any]:
    checks = []
    for check in result.checks:
        comparison = {
            key: _finite(value) if isinstance(value, float) else value
            for key, value in check.comparison.__dict__.items()
        }
        rule = {key: value for key, value in check.rule.__dict__.items() if value is not None}
        checks.append(
            {
                **comparison,
                "drop": _finite(check.comparison.drop),
                "relative_drop": _finite(check.comparison.relative_drop),
                "allowed_drop": _finite(check.allowed_drop),
                "passed": check.passed,
                "reason": check.reason,
                "rule": rule,
            }
        )
    return {
        "passed": result.passed,
        "exit_code": result.exit_code,
        "baseline": {"selector": result.baseline_selector, "run_id": result.baseline_run},
        "candidate": {"selector": result.candidate_selector, "run_id": result.candidate_run},
        "bootstrap_resamples": result.comparison.resamples,
        "seed": result.comparison.seed,
        "checks": checks,
    }


# -- commands ---------------------------------------------------------------------------------------


def _store(path: str | None) -> ResultStore:
    store = ResultStore(Path(path) if path else default_store_path())
    if not store.exists():
        raise HarnessError(f"no results store at {store.root}")
    return store


def _task_list(text: str | None) -> list[str]:
    tasks = [task.strip() for task in (text or "").split(",") if task.strip()]
    if text is not None and not tasks:
        raise HarnessError(f"--tasks names no task: '{text}'")  # not silently every task
    return tasks


def _command_compare(args: argparse.Namespace) -> int:
    tasks = _task_list(args.tasks)
    comparison = compare(
        _store(args.store),
        args.baseline,
        args.candidate,
        tasks=tasks or None,
        resamples=args.resamples,
        seed=args.seed,
        confidence=args.confidence,
        ignore_harness_version=args.ignore_harness_version,
    )
    baseline, candidate = comparison.baseline_run, comparison.candidate_run
    if args.format == "json":
        rows = [
            {**{k: _finite(v) if isinstance(v, float) else v for k, v in c.__dict__.items()}, "drop": c.drop}
            for c in comparison.comparisons
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"candidate {candidate} vs baseline {baseline} (difference = candidate - baseline)")
    print(_text_table(list(COLUMNS), [list(describe(c)) for c in comparison.comparisons]))
    for name, only in (("baseline", comparison.only_baseline), ("candidate", comparison.only_candidate)):
        if only:
            print(f"only in the {name}: {', '.join(f'{t}/{m}' for t, m in only)}")
    return 0


def _gate_defaults(args: argparse.Namespace) -> GateRule:
    settings: dict[str, Any] = {"alpha": args.alpha, "min_samples": args.min_samples}
    if args.max_relative_drop is not None:
        settings.update(max_relative_drop=args.max_relative_drop, max_drop=None)
    elif args.max_drop is not None:
        settings["max_drop"] = args.max_drop
    if args.no_significance:
        settings["require_significance"] = False
    rule = GateRule(**settings)
    if (rule.max_drop or 0) < 0 or (rule.max_relative_drop or 0) < 0:
        raise HarnessError("--max-drop and --max-relative-drop must be 0 or more")
    if not 0 < rule.alpha < 1 or rule.min_samples < 1:
        raise HarnessError("--alpha must be between 0 and 1 and --min-samples at least 1")
    return rule


def _command_gate(args: argparse.Namespace) -> int:
    defaults = _gate_defaults(args)
    config = load_gate_config(args.config, defaults) if args.config else GateConfig(defaults=defaults)
    result = run_gate(
        _store(args.store),
        args.baseline,
        args.candidate,
        config,
        resamples=args.resamples,
        seed=args.seed,
        ignore_harness_version=args.ignore_harness_version,
    )
    if args.markdown:
        _write_report(args.markdown, gate_markdown(result))
    if args.junit:
        _write_report(args.junit, gate_junit(result))
    if args.json:
        _write_report(args.json, json.dumps(gate_json(result), indent=2) + "\n")
    print(gate_table(result))
    return result.exit_code


def _write_report(path: str, text: str) -> None:
    # A report path CI got wrong (a folder, a folder that cannot be made) is bad input: one line, and
    # atomic_write_text has left no temp file behind.
    try:
        atomic_write_text(Path(path), text)
    except OSError as error:
        raise HarnessError(f"cannot write the gate report {path}: {error.strerror or error}") from None


def _command_watch(args: argparse.Namespace) -> int:
    from harness.adapters import ADAPTERS
    from harness.watch import WatchSettings, watch

    ADAPTERS.get(args.adapter)  # an unknown adapter is refused now, not when the first checkpoint lands
    model_args = parse_model_args(args.model_args)
    if args.batch_size is not None:
        model_args["batch_size"] = args.batch_size
    settings = WatchSettings(
        directory=Path(args.directory),
        tasks=tuple(_task_list(args.tasks)) or _default_suite(),
        adapter=args.adapter,
        model_args=model_args,
        include_paths=tuple(Path(p) for p in args.include_path),
        store=Path(args.store) if args.store else None,
        experiment=args.experiment,
        tags=normalise_tags(args.tag),
        limit=args.limit,
        seed=args.seed,
        poll_seconds=args.poll_seconds,
        settle_seconds=args.settle_seconds,
        once=args.once,
        max_checkpoints=args.max_checkpoints,
    )
    if args.limit is not None and args.limit <= 0:
        raise HarnessError("--limit must be a positive number of documents")
    outcomes = watch(settings, log=sys.stderr)
    return 2 if any(outcome.status == "failed" for outcome in outcomes) else 0


def _default_suite() -> tuple[str, ...]:
    from harness.tasks import DEFAULT_SUITE

    return tuple(DEFAULT_SUITE)


def add_parser(commands: Any) -> None:
    """Register compare, gate and watch on the `harness` command's subparsers."""
    store_help = "results store folder (default $HARNESS_STORE or ./harness_store)"
    compare = commands.add_parser("compare", help="paired comparison of two runs on shared samples")
    compare.add_argument("baseline", help=f"baseline run: {SELECTOR_HELP}")
    compare.add_argument("candidate", help="candidate run, selected the same way")
    compare.add_argument("--store", default=None, help=store_help)
    compare.add_argument("--tasks", default=None, help="only these tasks, comma separated")
    compare.add_argument("--format", choices=["table", "json"], default="table")
    compare.add_argument("--confidence", type=finite_float_arg, default=0.95)
    for parser in (compare, gate := commands.add_parser("gate", help="fail on a significant regression")):
        parser.add_argument(
            "--resamples", type=resamples_arg(2), default=2000, help="paired bootstrap resamples"
        )
        parser.add_argument("--seed", type=seed_arg, default=0)
        parser.add_argument(
            "--ignore-harness-version",
            action="store_true",
            help="compare metric signatures without the harness version they were computed with",
        )
    compare.set_defaults(handler=_command_compare)

    gate.add_argument("--baseline", required=True, help=f"baseline run: {SELECTOR_HELP}")
    gate.add_argument("--candidate", required=True, help="candidate run, selected the same way")
    gate.add_argument(
        "--config", default=None, help="gates.yaml: rules per task/metric; they refine the flags below"
    )
    gate.add_argument("--store", default=None, help=store_help)
    gate.add_argument(
        "--max-drop", type=finite_float_arg, default=None, help="allowed absolute drop (default 0)"
    )
    gate.add_argument(
        "--max-relative-drop",
        type=finite_float_arg,
        default=None,
        help="allowed drop as a fraction of the baseline",
    )
    gate.add_argument(
        "--alpha", type=finite_float_arg, default=0.05, help="significance level (default 0.05)"
    )
    gate.add_argument("--min-samples", type=int, default=1, help="fail rules with fewer shared samples")
    gate.add_argument("--no-significance", action="store_true", help="fail on any drop over the margin")
    gate.add_argument("--markdown", default=None, metavar="FILE", help="write a pull-request comment")
    gate.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML, one testcase per rule")
    gate.add_argument("--json", default=None, metavar="FILE", help="write the full result as JSON")
    gate.set_defaults(handler=_command_gate)

    watch = commands.add_parser("watch", help="evaluate each new checkpoint in a folder once")
    watch.add_argument("directory", help="folder the trainer writes checkpoint folders into")
    watch.add_argument("--tasks", default=None, help="names or YAML files, comma separated")
    watch.add_argument("--adapter", default="hf", help="adapter that loads a checkpoint folder (default hf)")
    watch.add_argument("--model-args", nargs="+", default=[], metavar="KEY=VALUE")
    watch.add_argument("--batch-size", type=batch_size_arg, default=None, help="N or auto")
    watch.add_argument("--include-path", action="append", default=[], help="folder of task YAML files")
    watch.add_argument("--store", default=None, help=store_help)
    watch.add_argument("--experiment", default=None, help="experiment name (default: the folder's name)")
    watch.add_argument(
        "--tag", action="append", default=[], metavar="NAME", help="tag every run (repeatable)"
    )
    watch.add_argument("--limit", type=int, default=None)
    watch.add_argument("--seed", type=seed_arg, default=0)
    watch.add_argument("--poll-seconds", type=seconds_arg(0, inclusive=False), default=30.0)
    watch.add_argument(
        "--settle-seconds",
        type=seconds_arg(0, inclusive=True),
        default=10.0,
        help="wait until files stop changing",
    )
    watch.add_argument("--once", action="store_true", help="evaluate what is there now, then exit")
    watch.add_argument("--max-checkpoints", type=int, default=None, help="exit after evaluating N")
    watch.set_defaults(handler=_command_watch)
