"""`harness audit DATA --group-field F [--group-field G] [--label-field L]`: the command line over
`harness.audit.audit` (representation and label balance of a data set, stored as a run)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd

from harness.cli_support import seed_arg


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "audit", help="who is in a data file, with which labels (per group and intersection); stored as a run"
    )
    parser.add_argument("data", metavar="DATA", help=".jsonl .json .csv .tsv .parquet")
    parser.add_argument(
        "--group-field",
        action="append",
        required=True,
        metavar="FIELD",
        help="a group field (repeatable, or comma separated); intersections of several are audited too",
    )
    parser.add_argument("--label-field", default=None, help="label whose balance across groups to check")
    parser.add_argument(
        "--min-group-size", type=int, default=10, help="fewer rows than this: flagged too_small (default 10)"
    )
    parser.add_argument(
        "--min-ratio",
        type=float,
        default=0.5,
        help="flag a group whose share's upper 95%% bound is below this fraction of its expected share",
    )
    parser.add_argument(
        "--store", default=None, help="results store (default $HARNESS_STORE or ./harness_store)"
    )
    parser.add_argument("--no-store", action="store_true", help="report only; write no run")
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--tag", action="append", default=[], metavar="NAME", help="tag the run (repeatable)")
    parser.add_argument("--seed", type=seed_arg, default=0)
    parser.add_argument("--bootstrap-resamples", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    parser.set_defaults(handler=command_audit)


def command_audit(args: argparse.Namespace) -> int:
    from harness.audit import audit
    from harness.fairness.scores import signature_settings

    fields = [name.strip() for item in args.group_field for name in item.split(",") if name.strip()]
    report = audit(
        args.data,
        fields,
        args.label_field,
        store=args.store,
        write=not args.no_store,
        experiment=args.experiment,
        tags=args.tag,
        min_group_size=args.min_group_size,
        min_ratio=args.min_ratio,
        bootstrap_resamples=args.bootstrap_resamples,
        permutations=args.permutations,
        seed=args.seed,
    )
    table = report.audit.table()
    labels = [score.__dict__ for score in report.audit.label_scores]
    if args.format == "json":
        print(json.dumps({"representation": table.to_dict(orient="records"), "labels": labels}, indent=2))
    elif args.format == "csv":
        print(table.to_csv(index=False).rstrip("\n"))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if labels:
            shown = [
                {
                    **{key: row[key] for key in ("metric", "value", "ci_low", "ci_high", "n")},
                    "p_value": signature_settings(row["signature"]).get("p_value"),
                    "p_holm": signature_settings(row["signature"]).get("p_holm"),
                }
                for row in labels
            ]
            frame = pd.DataFrame(shown)
            print("\nlabel balance:\n" + frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for row in report.audit.flagged:
        sys.stderr.write(
            f"audit: {row.flag}: {row.group} ({row.count} of {row.total} rows, {row.share:.1%}; "
            f"expected {row.expected:.1%})\n"
        )
    stored = f"stored as run {report.run_id} in {report.store}" if report.store else "not stored"
    sys.stderr.write(
        f"audit {report.audit.source}: {report.audit.rows} rows, {len(report.audit.flagged)} flagged; "
        f"{stored}\n"
    )
    return 0
