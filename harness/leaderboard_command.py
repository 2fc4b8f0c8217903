"""`harness leaderboard [--store DIR] [--port N] [--address IP] [--private]`: serve the Streamlit app.

This command checks its arguments and then replaces itself with `streamlit run` (exec, not a child
process), so Ctrl-C, a service manager's SIGTERM or a test's kill reach the server directly and
never leave an orphan behind. A store that does not exist yet is not an error here: the app says
so on the page, and shows the runs as soon as they are written.

The server listens on 127.0.0.1 unless `--address` says otherwise, so a laptop's results are not
served to its whole network by accident. The store is fixed here, at launch: visitors cannot open
another. `--private` makes every results page ask for a viewer token (`harness ratings viewer`);
the rating pages always ask raters for their own token. Streamlit sends no usage statistics and
never asks for an e-mail address, and nothing is written to the user's ~/.streamlit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.store import default_store_path
from harness.store.location import is_remote

__all__ = ["add_parser", "streamlit_command"]

DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "127.0.0.1"
# Also set in the environment, so a Streamlit config file of the user's cannot turn them back on.
STREAMLIT_ENVIRONMENT = {
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "STREAMLIT_SERVER_SHOW_EMAIL_PROMPT": "false",
}


def _app_path() -> Path:
    # Imported here, not at module level, so the rest of the CLI never pays for the leaderboard.
    import harness.leaderboard

    return Path(harness.leaderboard.__file__).resolve().parent / "app.py"


def streamlit_command(
    store: Path,
    port: int,
    *,
    headless: bool = False,
    address: str = DEFAULT_ADDRESS,
    private: bool = False,
    ratings_db: Path | None = None,
) -> list[str]:
    """The `streamlit run` command line serving the app for `store` on `address`:`port`."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(_app_path()),
        "--server.port",
        str(port),
        "--server.headless",
        "true" if headless else "false",
        # Evaluation machines are often offline, and results are not ours to report on.
        "--browser.gatherUsageStats",
        "false",
        # Streamlit's first-run prompt would also write ~/.streamlit/credentials.toml.
        "--server.showEmailPrompt",
        "false",
        # Viewers of a results store need no "Deploy" button or developer menu.
        "--client.toolbarMode",
        "minimal",
        "--server.address",
        address,
        "--",
        "--store",
        str(store),
        *(["--private"] if private else []),
        *(["--ratings-db", str(ratings_db)] if ratings_db is not None else []),
    ]


def _command_leaderboard(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise HarnessError(f"--port must be between 1 and 65535, got {args.port}")
    ratings_db = Path(args.ratings_db).resolve() if args.ratings_db else None
    if ratings_db is not None and not ratings_db.is_file():
        raise HarnessError(f"--ratings-db {args.ratings_db} is no ratings database file")
    # Every refusal before the notice below: bad input gets one line, nothing more.
    address = str(args.address).strip()
    if not address or any(character.isspace() for character in address):
        raise HarnessError(f"--address must be an interface address like 127.0.0.1, got '{args.address}'")
    store = Path(args.store) if args.store else default_store_path()
    if store.exists() and not store.is_dir():
        raise HarnessError(f"results store path {store} is a file, not a store directory")
    if not is_remote(store) and not store.exists():
        sys.stderr.write(f"harness: no results store at {store} yet; the leaderboard will say so\n")
    target = store if is_remote(store) else store.resolve()  # an s3:// store passes on as it is
    command = streamlit_command(
        target,
        args.port,
        headless=args.headless,
        address=address,
        private=args.private,
        ratings_db=ratings_db,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # Unbuffered, so the "You can now view..." line reaches a piped terminal or log at once.
    os.environ["PYTHONUNBUFFERED"] = "1"
    os.environ.update(STREAMLIT_ENVIRONMENT)
    try:
        os.execv(command[0], command)
    except OSError as error:
        raise HarnessError(f"cannot start Streamlit ({command[0]}): {error}") from error
    return 0  # not reached: a successful execv never returns


def add_parser(commands: Any) -> None:
    """Register `harness leaderboard` on the CLI's subcommand parsers."""
    parser = commands.add_parser("leaderboard", help="serve the Streamlit leaderboard over a results store")
    parser.add_argument(
        "--store", default=None, help="results store folder (default $HARNESS_STORE or ./harness_store)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help=f"interface to listen on (default {DEFAULT_ADDRESS}; 0.0.0.0 serves every network)",
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="results pages ask for a viewer token (harness ratings viewer NAME)",
    )
    parser.add_argument(
        "--ratings-db",
        default=None,
        metavar="FILE",
        help="the ratings database of `harness ratings ... --db FILE` (default: the store's own)",
    )
    parser.add_argument(
        "--headless", action="store_true", help="do not open a browser (servers, containers, CI)"
    )
    parser.set_defaults(handler=_command_leaderboard)
