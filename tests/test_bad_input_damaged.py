"""One damaged part file, end to end: every reader carries on with one warning naming it (`scores`,
`compare`, `gate`, `run`, and the leaderboard app itself), `harness store check` finds it and
`--repair` moves it, byte for byte, into the store's quarantine, after which nothing warns any more.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import harness
import harness.store.reader
from harness.leaderboard.views import VIEWS_DIR
from tests.test_bad_input import DAMAGE, cli, mock_runs, snapshot

APP = Path(VIEWS_DIR).parent / "app.py"
EXPERIMENTS = ("base", "cand", "other")


@pytest.fixture(scope="module")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    root = tmp_path_factory.mktemp("damaged") / "store"
    runs = [
        {"experiment": experiment, "model_args": {"name": f"mock-{experiment}"}} for experiment in EXPERIMENTS
    ]
    return root, mock_runs(root, runs, limit=10)


def _app_warnings(app: AppTest) -> list[str]:
    # The app escapes Markdown in names it shows as text (`part\\-1\\.parquet`).
    return [str(warning.value).replace("\\", "") for warning in app.warning]


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("harness: warning: ")]


def _leaderboard(monkeypatch: pytest.MonkeyPatch, root: Path) -> AppTest:
    monkeypatch.setenv("HARNESS_STORE", str(root))  # the store the app is launched on
    # Streamlit's loggers keep the stderr of the test that first used them (pytest's capture, closed
    # since); their bare-mode notices would then be logging errors in this test's output.
    logging.disable(logging.WARNING)
    try:
        app = AppTest.from_file(str(APP), default_timeout=60)
        app.run()
    finally:
        logging.disable(logging.NOTSET)
    assert not app.exception, [exception.value for exception in app.exception]
    return app


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_part_is_skipped_everywhere_then_quarantined(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    built_store: tuple[Path, tuple[str, ...]],
    how: str,
) -> None:
    root = tmp_path / "store"
    shutil.copytree(built_store[0], root)
    ids = built_store[1]
    damaged = root / "runs" / f"part-{ids[2]}.parquet"
    DAMAGE[how](damaged)
    original = damaged.read_bytes()
    store = ["--store", str(root)]
    commands = {
        "scores": ["scores", *store, "--format", "json"],
        "compare": ["compare", "latest:base", "latest:cand", *store, "--resamples", "50"],
        "gate": [
            "gate",
            "--baseline",
            "latest:base",
            "--candidate",
            "latest:cand",
            "--max-drop",
            "1",
            *store,
        ],
        "run": [
            "run",
            "--model",
            "mock:9",
            "--tasks",
            "harness_tone",
            "--limit",
            "10",
            "--quiet",
            "--no-cache",
            *store,
        ],
    }
    for name, arguments in commands.items():
        # Each command is a process of its own in real use; the reader warns once per process.
        monkeypatch.setattr(harness.store.reader, "_WARNED", set())
        before = snapshot(root)
        result = cli(capsys, *arguments)
        assert result.code == 0, (name, result)
        warned = _warnings(result.err)
        assert len(warned) == 1 and str(damaged) in warned[0], (name, result.err)
        assert "store check" in warned[0]
        assert len(result.lines) == 1 + (name == "run"), (name, result.err)  # `run` adds its summary
        after = snapshot(root)
        assert {key: after[key] for key in before} == before, name  # nothing stored earlier changed
        if name == "scores":
            assert {row["run_id"] for row in json.loads(result.out)} == {ids[0], ids[1]}

    # The leaderboard app shows the readable runs and names the damaged part among its problems.
    app = _leaderboard(monkeypatch, root)
    shown = set(app.dataframe[0].value["model"])
    assert {"mock-base", "mock-cand"} <= shown and "mock-other" not in shown
    assert any(damaged.name in warning for warning in _app_warnings(app)), _app_warnings(app)

    found = cli(capsys, "store", "check", *store)
    assert found.code == 1 and str(damaged.relative_to(root)) in found.out, found
    repaired = cli(capsys, "store", "check", *store, "--repair")
    assert repaired.code == 0 and repaired.err == "", repaired
    (quarantine,) = (root / "_quarantine").iterdir()
    assert not damaged.exists()
    assert (quarantine / "runs" / damaged.name).read_bytes() == original  # moved, never deleted

    # After the repair no reader warns; the other run's orphaned parts went with it.
    for name in ("scores", "compare", "gate"):
        result = cli(capsys, *commands[name])
        assert result.code == 0 and _warnings(result.err) == [], (name, result)
    app = _leaderboard(monkeypatch, root)
    assert not any(damaged.name in warning for warning in _app_warnings(app))
