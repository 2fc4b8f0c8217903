"""`harness leaderboard [--store DIR] [--port N]`: serve the Streamlit leaderboard over a results store.

This command checks its arguments and then replaces itself with `streamlit run` (exec, not a child
process), so Ctrl-C, a service manager's SIGTERM or a test's kill reach the server directly and
never leave an orphan behind. A store that does not exist yet is not an error here: the app says
so on the page, and shows the runs as soon as they are written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.store import default_store_path

__all__ = ["add_parser", "streamlit_command"]

DEFAULT_PORT = 8501


def _app_path() -> Path:
    # Imported here, not at module level, so the rest of the CLI never pays for the leaderboard.
    import harness.leaderboard

    return Path(harness.leaderboard.__file__).resolve().parent / "app.py"


def streamlit_command(
    store: Path, port: int, *, headless: bool = False, address: str | None = None
) -> list[str]:
    """The `streamlit run` command line serving the app for `store` on `port`."""
    bind = ["--server.address", address] if address else []
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
        # Viewers of a results store need no "Deploy" button or developer menu.
        "--client.toolbarMode",
        "minimal",
        *bind,
        "--",
        "--store",
        str(store),
    ]


def _command_leaderboard(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise HarnessError(f"--port must be between 1 and 65535, got {args.port}")
    store = Path(args.store) if args.store else default_store_path()
    if store.exists() and not store.is_dir():
        raise HarnessError(f"results store path {store} is a file, not a store directory")
    if not store.exists():
        sys.stderr.write(f"harness: no results store at {store} yet; the leaderboard will say so\n")
    command = streamlit_command(store.resolve(), args.port, headless=args.headless, address=args.address)
    sys.stdout.flush()
    sys.stderr.flush()
    # Unbuffered, so the "You can now view..." line reaches a piped terminal or log at once.
    os.environ["PYTHONUNBUFFERED"] = "1"
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
        "--address", default=None, help="interface to bind, e.g. 127.0.0.1 (default: Streamlit's, all)"
    )
    parser.add_argument(
        "--headless", action="store_true", help="do not open a browser (servers, containers, CI)"
    )
    parser.set_defaults(handler=_command_leaderboard)
