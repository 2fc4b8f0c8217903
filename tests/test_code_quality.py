"""Style is kept by the tools: ruff and mypy run as part of the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Top-level source folders that install as `harness.<folder>` (pyproject.toml, [tool.setuptools.package-dir]).
MAPPED_FOLDERS = ("tasks", "metrics", "fairness", "leaderboard")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def _namespace_tree(root: Path) -> Path:
    """The source folders linked into the one `harness` package as the build configuration maps them.

    mypy resolves modules from folders, not from the build's package mapping, so it checks this mirror.
    """
    package = root / "harness"
    package.mkdir(parents=True)
    for entry in (ROOT / "harness").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in MAPPED_FOLDERS:
        (package / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return root


def test_mypy(tmp_path: Path) -> None:
    tree = _namespace_tree(tmp_path / "tree")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "harness"],
        cwd=tree,
        env={**os.environ, "MYPYPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
