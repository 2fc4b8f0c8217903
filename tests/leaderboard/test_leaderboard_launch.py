"""`harness leaderboard` as launched: loopback by default, the store and privacy fixed on the command
line, no telemetry and no first-run e-mail prompt (nothing written to ~/.streamlit), bad input exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.screenshot_leaderboard import free_port, serve
from harness.cli import main
from harness.leaderboard_command import STREAMLIT_ENVIRONMENT, streamlit_command


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_streamlit_command_binds_loopback_and_sends_nothing(tmp_path: Path) -> None:
    command = streamlit_command(tmp_path, 8600)
    assert _option(command, "--server.address") == "127.0.0.1"
    assert _option(command, "--browser.gatherUsageStats") == "false"
    assert _option(command, "--server.showEmailPrompt") == "false"
    assert command[-3:] == ["--", "--store", str(tmp_path)]
    private = streamlit_command(tmp_path, 8600, address="0.0.0.0", private=True)
    assert _option(private, "--server.address") == "0.0.0.0"
    assert private[-4:] == ["--", "--store", str(tmp_path), "--private"]
    assert STREAMLIT_ENVIRONMENT == {
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "STREAMLIT_SERVER_SHOW_EMAIL_PROMPT": "false",
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--address", ""], "--address must be"),
        (["--address", "127.0.0.1 --private"], "--address must be"),
        (["--port", "70000"], "--port must be"),
        (["--port", "http"], "invalid int value"),
        (["--store", "{file}"], "is a file"),
        (["--privat"], "unrecognized arguments"),  # no abbreviations of --private
    ],
)
def test_bad_launch_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    (tmp_path / "file").write_text("not a store")
    arguments = [argument.replace("{file}", str(tmp_path / "file")) for argument in arguments]
    try:
        code = main(["leaderboard", *arguments])
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert message in err.strip().splitlines()[-1]


def test_a_first_launch_asks_nothing_and_writes_nothing_home(tmp_path: Path) -> None:
    """Not headless, with a fresh home: Streamlit would ask for an e-mail and record a machine id."""
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("STREAMLIT_")},
        "HOME": str(home),
        "BROWSER": "true",  # the "open a browser" step runs /bin/true
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
    }
    command = [sys.executable, "-m", "harness.cli", "leaderboard", "--store", str(tmp_path / "store")]
    try:
        # stdin is a pipe: an e-mail prompt would wait there for ever.
        with serve(
            [*command, "--port", str(port)],
            tmp_path / "server.log",
            port,
            environment=environment,
            timeout=40,
            stdin=subprocess.PIPE,
        ):
            pass
    except RuntimeError as error:
        pytest.fail(str(error))
    output = (tmp_path / "server.log").read_text()
    assert "Email" not in output and "usage statistics" not in output.lower(), output
    assert not (home / ".streamlit").exists()
