"""`harness ratings campaign|invite|viewer|list|export|summary`: human-evaluation campaigns over runs.

Ratings are collected in the app's rating pages (`harness leaderboard`), committed to the ratings
database (`<store>/ratings.sqlite`, or `--db`), and exported to the store's Parquet `ratings` table.
For a store in object storage (`--store s3://bucket/prefix`) the database is a local file (SQLite
cannot live in a bucket: `RatingsDB.for_store`), and `export` uploads the table into the bucket.
Raters sign in with the personal token `invite` prints (the database keeps only its hash); `viewer`
makes tokens for the results pages of an app started with `harness leaderboard --private`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from harness.cli_support import seed_arg
from harness.ratings.analysis import CampaignSummary, summarize
from harness.ratings.campaign import load_gold, plan_campaign
from harness.ratings.correlation import sample_metric_values
from harness.ratings.db import RatingsDB
from harness.ratings.errors import RatingsError
from harness.ratings.export import export_ratings, ratings_frame
from harness.ratings.records import MODES
from harness.ratings.rubric import load_rubric
from harness.store import ResultStore, default_store_path
from harness.store.location import uri

__all__ = ["add_parser"]

_DEFAULT_URL = "http://127.0.0.1:8501"


def _store(args: argparse.Namespace) -> ResultStore:
    return ResultStore(Path(args.store) if args.store else default_store_path())


def _db(args: argparse.Namespace, store: ResultStore) -> RatingsDB:
    return RatingsDB(Path(args.db)) if args.db else RatingsDB.for_store(store.root)


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _command_campaign(args: argparse.Namespace) -> int:
    store = _store(args)
    rubric = load_rubric(args.rubric) if args.rubric else None
    if args.mode == "pairwise" and rubric is not None:
        raise RatingsError(
            "--rubric is for rubric campaigns; a pairwise campaign asks which answer is better"
        )
    gold = load_gold(args.gold, args.mode, rubric) if args.gold else []
    plan = plan_campaign(
        store,
        campaign_id=args.name,
        mode=args.mode,
        runs=args.runs,
        rubric=rubric,
        tasks=_names(args.tasks),
        limit=args.limit,
        overlap=args.overlap,
        gold=gold,
        roster=_names(args.raters),
        seed=args.seed,
        description=args.description or "",
    )
    db = _db(args, store)
    db.create_campaign(plan.campaign, plan.items)
    campaign = plan.campaign
    items = len(plan.items) - plan.gold_items
    raters = f"raters: {', '.join(campaign.roster)}" if campaign.roster else "any rater who signs in"
    print(
        f"campaign {campaign.campaign_id}: {campaign.mode}, {items} items + {plan.gold_items} gold, "
        f"{campaign.overlap} rater(s) per item, runs {', '.join(campaign.runs)}; {raters}"
    )
    for note in plan.notes:
        print(f"note: {note}")
    print(f"stored in {db.path}; rate in `harness leaderboard --store {store.location}`")
    return 0


def _base_url(text: str) -> str:
    parsed = urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
        raise RatingsError(f"--url must be the app's address, like http://127.0.0.1:8501, not '{text}'")
    return text.rstrip("/")


def _command_invite(args: argparse.Namespace) -> int:
    from harness.leaderboard.views import RATING_PAGES

    base = _base_url(args.url)
    db = _db(args, _store(args))
    if not db.exists():
        raise RatingsError(f"no ratings database at {db.path}; create a campaign first")
    campaign = db.campaign(args.campaign)
    invitation = db.invite(campaign.campaign_id, args.rater)
    rater = invitation.identity.name
    print(f"rater {rater} of campaign {campaign.campaign_id}: sign-in token {invitation.token}")
    print(f"link: {invitation.link(base, RATING_PAGES[campaign.mode])}")
    print("the token is shown only now (only its hash is stored); any earlier token of this rater is void")
    return 0


def _command_viewer(args: argparse.Namespace) -> int:
    base = _base_url(args.url)
    store = _store(args)
    if not args.db and not store.exists():
        raise RatingsError(f"no results store at {store.location}")
    invitation = _db(args, store).add_viewer(args.name)
    print(f"viewer {invitation.identity.name}: sign-in token {invitation.token}")
    print(f"link: {invitation.link(base, '')}")
    print("the token is shown only now (only its hash is stored); any earlier token of this viewer is void")
    return 0


def _command_list(args: argparse.Namespace) -> int:
    store = _store(args)
    if not args.db and not store.exists():
        raise RatingsError(f"no results store at {store.location}")
    db = _db(args, store)
    if db.path.exists() and not db.path.is_file():
        raise RatingsError(f"--db {db.path} is a folder, not a ratings database file")
    rows = []
    for campaign in db.campaigns():
        progress = db.campaign_progress(campaign.campaign_id)
        rows.append(
            {
                "campaign": campaign.campaign_id,
                "mode": campaign.mode,
                "items": progress.items,
                "gold": progress.gold_items,
                "overlap": campaign.overlap,
                "raters": progress.raters,
                "complete_items": progress.complete_items,
                "progress": round(progress.fraction, 4),
                "created_at": campaign.created_at.isoformat(timespec="seconds"),
            }
        )
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(pd.DataFrame(rows).to_string(index=False) if rows else f"(no campaigns in {db.path})")
    return 0


def _command_export(args: argparse.Namespace) -> int:
    store = _store(args)
    if not store.exists():
        raise RatingsError(f"no results store at {store.location}")
    db = _db(args, store)
    if not db.exists():
        raise RatingsError(f"no ratings database at {db.path}; create a campaign first")
    for path, rows in export_ratings(db, store.root, args.campaign or None):
        print(f"{uri(path)}: {rows} rating(s)")
    return 0


def _metric_values(store: ResultStore, runs: tuple[str, ...]) -> pd.DataFrame | None:
    if not store.exists():
        return None
    frames = [store.samples(run_id) for run_id in runs]
    samples = pd.concat([frame for frame in frames if not frame.empty] or [pd.DataFrame()], ignore_index=True)
    return None if samples.empty else sample_metric_values(samples)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _print_summary(summary: CampaignSummary) -> None:
    sections: list[tuple[str, pd.DataFrame | None]] = [
        ("Human scores" if summary.mode == "rubric" else "Bradley–Terry ratings", summary.scores),
        ("Win rates (row beats column)", summary.win_rates),
        ("Agreement (Krippendorff's alpha)", summary.agreement),
        ("Cohen's kappa by rater pair", summary.kappas),
        ("Correlation with automatic metrics", summary.correlations),
        ("Raters", summary.raters),
    ]
    for title, frame in sections:
        if frame is None or frame.empty:
            continue
        print(f"{title}:")
        print(frame.to_string(float_format=_fmt, index=title.startswith("Win")))
        print()
    bias = summary.position_bias
    if bias is not None and bias.decisive:
        print(
            f"Position bias: the left answer won {bias.left_wins} of {bias.decisive} decisive votes "
            f"({bias.rate:.1%}, 95% CI {_fmt(bias.ci_low)}-{_fmt(bias.ci_high)}, p = {_fmt(bias.p_value)})"
        )
    for note in summary.notes:
        print(f"note: {note}")


def _command_summary(args: argparse.Namespace) -> int:
    store = _store(args)
    db = _db(args, store)
    campaign = db.campaign(args.name)
    summary = summarize(
        ratings_frame(db, campaign.campaign_id),
        mode=campaign.mode,
        metric_values=_metric_values(store, campaign.runs),
        exclude_flagged=not args.keep_flagged,
        resamples=args.resamples,
        seed=args.seed,
    )
    if args.format == "json":
        print(json.dumps({"campaign": campaign.campaign_id, **summary.to_dict()}, indent=2, default=str))
    else:
        _print_summary(summary)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=None, help="results store folder (default $HARNESS_STORE or ./harness_store)"
    )
    parser.add_argument(
        "--db",
        default=None,
        help="ratings database file (default STORE/ratings.sqlite; for s3:// under ~/.cache/harness)",
    )


def add_parser(commands: Any) -> None:
    """Register `harness ratings ...` on the CLI's subcommand parsers."""
    ratings = commands.add_parser("ratings", help="human evaluation: campaigns, invitations, export, summary")
    actions = ratings.add_subparsers(dest="ratings_command", required=True, parser_class=type(ratings))

    campaign = actions.add_parser("campaign", help="create a rating campaign from runs in the store")
    campaign.add_argument("name", help="campaign name (letters, digits, . _ -)")
    campaign.add_argument("--mode", choices=MODES, required=True)
    campaign.add_argument("--runs", nargs="+", required=True, help="run ids or selectors (latest:EXP, ...)")
    campaign.add_argument("--rubric", default=None, help="rubric YAML (rubric mode)")
    campaign.add_argument("--tasks", default=None, help="only these tasks, comma separated")
    campaign.add_argument(
        "--limit", type=int, default=None, help="rate at most N documents (a seeded sample)"
    )
    campaign.add_argument(
        "--overlap", type=int, default=3, help="distinct raters wanted per item (default 3)"
    )
    campaign.add_argument("--gold", default=None, help="YAML list of gold items with known answers")
    campaign.add_argument(
        "--raters", default=None, help="only these raters, comma separated (default: anyone)"
    )
    campaign.add_argument(
        "--seed", type=seed_arg, default=0, help="fixes the document sample and rater orders"
    )
    campaign.add_argument("--description", default=None)
    _common(campaign)
    campaign.set_defaults(handler=_command_campaign)

    invite = actions.add_parser("invite", help="a personal sign-in token and link for one rater")
    invite.add_argument("campaign", help="the campaign to rate")
    invite.add_argument("rater", help="the rater's name (on the campaign's rater list, if it has one)")
    invite.add_argument("--url", default=_DEFAULT_URL, help=f"the app's address (default {_DEFAULT_URL})")
    _common(invite)
    invite.set_defaults(handler=_command_invite)

    viewer = actions.add_parser(
        "viewer", help="a sign-in token for the results pages (harness leaderboard --private)"
    )
    viewer.add_argument("name", help="who the token is for")
    viewer.add_argument("--url", default=_DEFAULT_URL, help=f"the app's address (default {_DEFAULT_URL})")
    _common(viewer)
    viewer.set_defaults(handler=_command_viewer)

    listing = actions.add_parser("list", help="campaigns and their progress")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    _common(listing)
    listing.set_defaults(handler=_command_list)

    export = actions.add_parser("export", help="write the Parquet ratings table into the store")
    export.add_argument("--campaign", action="append", default=[], help="only this campaign (repeatable)")
    _common(export)
    export.set_defaults(handler=_command_export)

    summary = actions.add_parser("summary", help="scores, agreement and correlations of a campaign")
    summary.add_argument("name")
    summary.add_argument("--format", choices=["table", "json"], default="table")
    summary.add_argument("--keep-flagged", action="store_true", help="keep raters who failed gold checks")
    summary.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for intervals")
    summary.add_argument("--seed", type=seed_arg, default=0)
    _common(summary)
    summary.set_defaults(handler=_command_summary)
