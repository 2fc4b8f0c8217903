"""Store writes the file system refuses, for real: a read-only mount, a full disk, a folder the user may
not write to. Each is exit 2, one `harness: error:` line naming the cause, no traceback, and the store
exactly as it was (no part, no temp file).

The tests run as root here and in CI, where `chmod` stops nothing. So the refusals are made real with
the kernel's own tools, each confined to the one command under test: a private mount namespace
(`unshare -m`) in which the store is bind-mounted read-only, or a tiny tmpfs is filled to the last
block; and, for "permission denied", the command runs without the capability that lets root ignore
file modes (`setpriv --bounding-set -dac_override`). Nothing is mounted outside that one process.
Where the sandbox forbids these tools the test is skipped and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bad_input import mock_runs, snapshot

RUN = ["run", "--model", "mock:5", "--tasks", "harness_tone", "--limit", "10", "--quiet", "--no-cache"]
TIMEOUT = 180


@pytest.fixture(scope="module")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fs-refusals") / "store"
    mock_runs(root, [{}, {}], limit=10)
    return root


@pytest.fixture
def store(tmp_path: Path, built_store: Path) -> Path:
    shutil.copytree(built_store, tmp_path / "store")
    return tmp_path / "store"


def _environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HARNESS_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _shell(script: str, tmp_path: Path, *wrapper: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*wrapper, "sh", "-c", script],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )


def _namespace_or_skip(tmp_path: Path) -> tuple[str, ...]:
    """`unshare` into a private mount namespace: as root directly, else in a user namespace of its own
    (where an unprivileged user may mount too). Skipped only where the kernel allows neither."""
    # util-linux (unshare, setpriv, mount) is part of every Debian base system: its absence is a broken
    # test machine, not a reason to check nothing.
    assert shutil.which("unshare") is not None, "util-linux's `unshare` is missing"
    probe = tmp_path / "mount-probe"
    probe.mkdir()
    failures = []
    for wrapper in (
        ("unshare", "-m", "--propagation", "private"),
        ("unshare", "-r", "-m", "--propagation", "private"),
    ):
        tried = _shell(f'mount -t tmpfs -o size=64k tmpfs "{probe}"', tmp_path, *wrapper)
        if tried.returncode == 0:
            return wrapper
        failures.append(tried.stderr.strip())
    pytest.skip(f"this kernel allows no private mount namespace, even a user namespace's: {failures}")


def _harness(*arguments: str) -> str:
    return " ".join([sys.executable, "-m", "harness.cli", *(f'"{a}"' for a in arguments)])


def _one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("harness: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize(
    "command",
    [
        [*RUN],
        ["score", "--predictions", "{predictions}", "--metrics", "token_f1"],
        ["store", "check", "--repair"],
    ],
    ids=["run", "score", "store-check-repair"],
)
def test_a_read_only_mounted_store(tmp_path: Path, store: Path, command: list[str]) -> None:
    wrapper = _namespace_or_skip(tmp_path)
    predictions = tmp_path / "outputs.jsonl"
    predictions.write_text('{"prediction": "a cat", "reference": "a cat"}\n', encoding="utf-8")
    # Something for --repair to move: a temp file whose writer is long gone.
    stale = store / "scores" / ".part-x.parquet.999999999-abcdef.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    before = snapshot(store)
    arguments = [a.format(predictions=predictions) for a in command]
    script = (
        f'mount --bind "{store}" "{store}" && mount -o remount,ro,bind "{store}" && '
        f"exec {_harness(*arguments, '--store', str(store))}"
    )
    result = _shell(script, tmp_path, *wrapper)
    _one_error(result, "Read-only file system", str(store))
    assert snapshot(store) == before


def test_a_full_disk(tmp_path: Path, store: Path) -> None:
    """The store on a small tmpfs filled to the last block: the run's parts cannot be written."""
    wrapper = _namespace_or_skip(tmp_path)
    disk, report = tmp_path / "disk", tmp_path / "report"
    disk.mkdir()
    report.mkdir()
    listing = "find . -type f | sort | xargs -r sha256sum"
    script = f"""
set -e
mount -t tmpfs -o size=4m tmpfs "{disk}"
cp -a "{store}" "{disk}/store"
dd if=/dev/zero of="{disk}/filler" bs=4096 2>/dev/null || true
cd "{disk}/store"
{listing} > "{report}/before"
set +e
{_harness(*RUN, "--store", f"{disk}/store")} > /dev/null 2> "{report}/stderr"
echo $? > "{report}/code"
{listing} > "{report}/after"
df -k "{disk}" | tail -1 > "{report}/df"
"""
    result = _shell(script, tmp_path, *wrapper)
    assert result.returncode == 0, result.stderr
    stderr = (report / "stderr").read_text()
    outcome = subprocess.CompletedProcess([], int((report / "code").read_text()), "", stderr)
    _one_error(outcome, "No space left on device", f"{disk}/store")
    before, after = (report / "before").read_text(), (report / "after").read_text()
    assert before and after == before, (before, after)  # nothing added, nothing changed, no temp file


def test_a_store_folder_the_user_may_not_write(tmp_path: Path, store: Path) -> None:
    """Folder modes enforced for root too: as root the command runs without CAP_DAC_OVERRIDE."""
    wrapper: tuple[str, ...] = ()
    if os.geteuid() == 0:
        assert shutil.which("setpriv") is not None, "util-linux's `setpriv` is missing"
        wrapper = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps=-all", "--")
    folders = [store, *(p for p in store.iterdir() if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        probe = _shell(f'touch "{store}/runs/.probe"', tmp_path, *wrapper)
        assert probe.returncode != 0, "the 0555 store is still writable: the test would check nothing"
        before = snapshot(store)
        result = _shell(_harness(*RUN, "--store", str(store)), tmp_path, *wrapper)
        _one_error(result, "Permission denied", str(store))
        assert snapshot(store) == before
    finally:
        for folder in folders:
            folder.chmod(0o755)
