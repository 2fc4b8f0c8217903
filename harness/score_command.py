"""`harness score --predictions FILE`: the command line over `harness.score` (harness/predictions.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.cli_support import print_scores, resamples_arg, seed_arg, step_arg


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("score", help="score predictions from a file and store them as a run")
    parser.add_argument(
        "--predictions", required=True, metavar="FILE", help=".jsonl .json .csv .tsv .parquet .txt"
    )
    parser.add_argument(
        "--references",
        action="append",
        default=[],
        metavar="FILE",
        help="references in their own file (repeatable)",
    )
    parser.add_argument(
        "--metrics", required=True, help="comma separated, e.g. bleu,chrf,rouge,token_f1,f1_macro"
    )
    parser.add_argument("--metric-args", nargs="+", default=[], metavar="METRIC.KEY=VALUE")
    parser.add_argument("--prediction-field", default="prediction")
    parser.add_argument(
        "--reference-field", action="append", default=None, help="repeatable (default: reference)"
    )
    parser.add_argument("--label-field", default=None, help="gold label for classification metrics")
    parser.add_argument("--group-field", default=None)
    parser.add_argument("--model", default=None, help="model name for the run (default: the file's stem)")
    parser.add_argument("--task", default=None, help="task name for the run (default: the file's stem)")
    parser.add_argument(
        "--store", default=None, help="results store (default $HARNESS_STORE or ./harness_store)"
    )
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--step", type=step_arg, default=None)
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="NAME",
        help="tag the run (repeatable); select with tag:NAME",
    )
    parser.add_argument("--seed", type=seed_arg, default=0)
    parser.add_argument("--bootstrap-resamples", type=resamples_arg(0), default=1000)
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    parser.set_defaults(handler=command_score)


def command_score(args: argparse.Namespace) -> int:
    from harness.predictions import score

    report = score(
        args.predictions,
        args.metrics,
        references=args.references,
        metric_args=args.metric_args,
        prediction_field=args.prediction_field,
        reference_fields=args.reference_field,
        label_field=args.label_field,
        group_field=args.group_field,
        model=args.model,
        task=args.task,
        store=args.store,
        experiment=args.experiment,
        step=args.step,
        tags=args.tag,
        seed=args.seed,
        bootstrap_resamples=args.bootstrap_resamples,
    )
    frame = report.to_frame()
    frame.insert(1, "model", report.model)
    if args.format == "table":  # per-class rows get their own table below
        frame = frame[~frame["metric"].str.contains("[", regex=False)]
    print_scores(frame, args.format)
    if args.format == "table" and report.per_class is not None:
        print("\nper class:\n" + report.per_class.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    sys.stderr.write(
        f"run {report.run_id}: {report.predictions} predictions, {report.metrics} metrics, "
        f"{report.wall_seconds:.1f} s; stored in {report.store}\n"
    )
    return 0
