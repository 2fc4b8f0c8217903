"""Bad input and damaged stores at the command line: one clear stderr line, never a traceback, and
nothing a user stored is ever lost.

Each case states what must happen: exit 2 with exactly one `harness: error:` line (usage errors,
refused writes), or the command's normal result with exactly one `harness: warning:` line naming a
damaged part it skipped. Commands run in-process (`harness.cli.main`) for speed; a closed output pipe
needs a real process. Every store starts as a copy of one built once per module.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import harness
import harness.files
from harness.cli import main
from harness.store import DamagedPartWarning, ResultStore, check_store, list_store, load_store

EXPERIMENTS = ("base", "cand", "other")
HOUR_AGO = time.time() - 3600


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


# A run that touches the store and no model cache: the write path alone is under test.
MOCK_RUN = ["run", "--model", "mock:5", "--tasks", "harness_tone", "--limit", "10", "--quiet", "--no-cache"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    try:
        code = main(list(args))
    except SystemExit as stop:  # argparse's usage errors
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return Result(code, out, err)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_error(result: Result, *fragments: str) -> str:
    assert result.code == 2, result
    assert len(result.lines) == 1, result.err
    (line,) = result.lines
    assert line.startswith("harness: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def mock_runs(root: Path, runs: Sequence[dict[str, Any]], *, limit: int = 4) -> tuple[str, ...]:
    """One `harness_tone` run of `mock:<i>` into the store at `root` for the i-th entry of `runs` (more
    `harness.evaluate` arguments), without bootstrap or cache; their run ids in order."""
    return tuple(
        harness.evaluate(
            model=f"mock:{seed}",
            tasks=["harness_tone"],
            limit=limit,
            store=root,
            bootstrap_resamples=0,
            use_cache=False,
            **arguments,
        ).run_id
        for seed, arguments in enumerate(runs)
    )


@pytest.fixture(scope="module")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    """Three runs of the mock model on a few documents: experiments base, cand and other."""
    root = tmp_path_factory.mktemp("bad-input") / "store"
    return root, mock_runs(root, [{"experiment": experiment} for experiment in EXPERIMENTS])


@pytest.fixture
def store(tmp_path: Path, built_store: tuple[Path, tuple[str, ...]]) -> tuple[Path, tuple[str, ...]]:
    """A copy of the module's `built_store` (whichever module uses this fixture), and its run ids."""
    shutil.copytree(built_store[0], tmp_path / "store")
    return tmp_path / "store", built_store[1]


# -- damaged parts ---------------------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not parquet at all" * 20)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _wrong_type(path: Path) -> None:
    table = pq.read_table(path)
    column = next(name for name in ("step", "value", "doc_id") if name in table.column_names)
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, column, pa.array(["abc"] * table.num_rows)), path)


def _wrong_run(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.set_column(0, "run_id", pa.array(["someone-else"] * table.num_rows)), path)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage": _garbage,
    "truncated": _truncated,
    "wrong-type": _wrong_type,
}


def _damage(root: Path, table: str, run_id: str, how: str) -> Path:
    path = root / table / f"part-{run_id}.parquet"
    DAMAGE[how](path)
    return path


# Which tables each command reads for every run (a part it never reads cannot be reported).
READS = {"scores": ("runs", "scores"), "compare": ("runs",), "gate": ("runs",), "run": ("runs",)}


def _command(name: str, root: Path, ids: tuple[str, ...]) -> list[str]:
    store = ["--store", str(root)]
    if name == "scores":
        return ["scores", *store, "--format", "json"]
    if name == "compare":
        return ["compare", "latest:base", ids[1], *store, "--resamples", "50"]
    if name == "gate":
        return ["gate", "--baseline", "latest:base", "--candidate", ids[1], "--max-drop", "1", *store,
                "--resamples", "50"]  # fmt: skip
    return [
        "run",
        "--model",
        "mock:7",
        "--tasks",
        "harness_tone",
        "--limit",
        "10",  # ten documents: fewer would add a warning about unstable scores
        "--quiet",
        "--no-cache",
        *store,
    ]


@pytest.mark.parametrize("how", list(DAMAGE))
@pytest.mark.parametrize("table", ["runs", "scores", "samples"])
@pytest.mark.parametrize("command", list(READS))
def test_a_damaged_part_of_another_run_is_skipped_with_one_warning(
    capsys: pytest.CaptureFixture[str],
    store: tuple[Path, tuple[str, ...]],
    command: str,
    table: str,
    how: str,
) -> None:
    root, ids = store
    damaged = _damage(root, table, ids[2], how)
    before = snapshot(root)
    result = cli(capsys, *_command(command, root, ids))
    assert result.code == 0, result
    warnings = [line for line in result.lines if line.startswith("harness: warning: ")]
    if table in READS[command]:
        assert len(warnings) == 1, result.err
        assert str(damaged) in warnings[0] and "store check" in warnings[0], warnings
    else:
        assert warnings == [], result.err
    # `run` adds its one summary line; every other command says nothing else.
    assert len(result.lines) == len(warnings) + (command == "run"), result.err
    after = snapshot(root)
    assert {name: after[name] for name in before} == before  # nothing stored earlier changed or went
    if command == "scores":
        shown = {row["run_id"] for row in json.loads(result.out)}
        assert {ids[0], ids[1]} <= shown
        assert (ids[2] in shown) == (table == "samples")
    if command == "run":
        assert len(ResultStore(root).runs()) == 3 + (table != "runs")


def test_a_runs_part_holding_another_run_is_damaged(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, tuple[str, ...]]
) -> None:
    root, ids = store
    path = root / "runs" / f"part-{ids[2]}.parquet"
    _wrong_run(path)
    result = cli(capsys, "scores", "--store", str(root), "--format", "json")
    assert result.code == 0 and len(result.lines) == 1, result
    assert str(path) in result.lines[0] and "someone-else" in result.lines[0]
    assert {row["run_id"] for row in json.loads(result.out)} == {ids[0], ids[1]}


@pytest.mark.parametrize("table", ["scores", "samples"])
@pytest.mark.parametrize("command", ["compare", "gate"])
def test_a_damaged_part_of_a_compared_run_is_one_error_naming_it(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, tuple[str, ...]], command: str, table: str
) -> None:
    root, ids = store
    damaged = _damage(root, table, ids[1], "garbage")
    before = snapshot(root)
    result = cli(capsys, *_command(command, root, ids))
    assert_one_error(result, str(damaged), "damaged")
    assert snapshot(root) == before


def test_a_named_run_whose_runs_part_is_damaged_is_not_called_unknown(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, tuple[str, ...]]
) -> None:
    root, ids = store
    damaged = _damage(root, "runs", ids[1], "wrong-type")
    result = cli(capsys, "compare", ids[0], ids[1], "--store", str(root))
    assert result.code == 2, result
    warning, error = result.lines  # the read of every run skips it, then the named run cannot be read
    assert warning.startswith("harness: warning: ") and str(damaged) in warning
    assert error.startswith("harness: error: ") and str(damaged) in error and "unknown" not in error


def test_scores_of_one_named_run_with_a_damaged_part_is_one_error(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, tuple[str, ...]]
) -> None:
    root, ids = store
    damaged = _damage(root, "scores", ids[0], "truncated")
    assert_one_error(cli(capsys, "scores", "--store", str(root), "--run", ids[0]), str(damaged))
    result = cli(capsys, "scores", "--store", str(root), "--run", ids[1], "--format", "json")
    assert result.code == 0 and result.lines == [], result


@pytest.mark.parametrize("table", ["runs", "scores"])
def test_the_leaderboard_reader_skips_a_damaged_part_and_says_so(
    store: tuple[Path, tuple[str, ...]], table: str
) -> None:
    root, ids = store
    damaged = _damage(root, table, ids[2], "wrong-type")
    with pytest.warns(DamagedPartWarning, match=str(damaged)):
        data = load_store(list_store(root))
    assert data.error is None
    assert {ids[0], ids[1]} <= set(data.scores["run_id"]) and ids[2] not in set(data.scores["run_id"])
    assert any(damaged.name in problem for problem in data.problems), data.problems


def test_the_python_api_warns_once_per_damaged_part(store: tuple[Path, tuple[str, ...]]) -> None:
    root, ids = store
    _damage(root, "runs", ids[2], "garbage")
    with pytest.warns(DamagedPartWarning) as caught:
        reader = ResultStore(root)
        assert list(reader.runs()["run_id"]) == [ids[0], ids[1]]
        reader.scores()
        reader.samples()
    assert len([w for w in caught if issubclass(w.category, DamagedPartWarning)]) == 1


# -- usage --------------------------------------------------------------------------------------------

USAGE: dict[str, tuple[list[str], list[str]]] = {
    "abbreviated-flag": (["run", "--model", "mock:0", "--task", "harness_tone"], ["--task"]),
    "abbreviated-scores-flag": (["scores", "--form", "json"], ["--form"]),
    "abbreviated-gate-flag": (["gate", "--base", "a", "--candidate", "b"], ["--base"]),
    "batch-size-text": (["run", "--model", "mock:0", "--batch-size", "abc"], ["--batch-size", "abc", "auto"]),
    "batch-size-zero": (["run", "--model", "mock:0", "--batch-size", "0"], ["--batch-size"]),
    "watch-batch-size": (["watch", ".", "--batch-size", "x1"], ["--batch-size", "x1"]),
    "score-negative-seed": (["score", "--predictions", "p", "--metrics", "bleu", "--seed", "-5"], ["--seed"]),
    "run-seed-too-big": (["run", "--model", "mock:0", "--seed", str(2**32)], ["--seed", "4294967295"]),
    "compare-seed-text": (["compare", "a", "b", "--seed", "x"], ["--seed"]),
    "store-without-action": (["store"], ["required", "check"]),
    "store-check-unknown-flag": (["store", "check", "--fix"], ["--fix"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, tuple[str, ...]], case: str
) -> None:
    root, _ = store
    arguments, fragments = USAGE[case]
    before = snapshot(root)
    store_flag = [] if arguments[0] == "store" else ["--store", str(root)]
    assert_one_error(cli(capsys, *arguments, *store_flag), *fragments)
    assert snapshot(root) == before


@pytest.mark.parametrize("output_format", ["json", "csv", "table"])
def test_a_closed_output_pipe_ends_quietly(store: tuple[Path, tuple[str, ...]], output_format: str) -> None:
    root, _ = store
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "scores", "--store", str(root), "--format", output_format],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # `| head -0`: the reader is gone before anything is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == "", stderr


# -- refused writes -----------------------------------------------------------------------------------


def _fail_nth_fsync(monkeypatch: pytest.MonkeyPatch, nth: int, code: int) -> None:
    """The nth fsync of a file harness writes fails as a full (or read-only) disk would."""
    calls = {"n": 0}
    real = os.fsync

    def fsync(fd: int) -> None:
        calls["n"] += stat.S_ISREG(os.fstat(fd).st_mode)  # files, not the folder synced after a rename
        if calls["n"] == nth and stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(harness.files.os, "fsync", fsync)


@pytest.mark.parametrize("nth", [1, 2, 3], ids=["samples", "scores", "runs"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_a_refused_write_is_one_line_and_leaves_no_trace(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store: tuple[Path, tuple[str, ...]],
    nth: int,
    code: int,
) -> None:
    root, _ = store
    before = snapshot(root)
    _fail_nth_fsync(monkeypatch, nth, code)
    arguments = MOCK_RUN
    assert_one_error(cli(capsys, *arguments, "--store", str(root)), os.strerror(code), "nothing of the run")
    assert snapshot(root) == before  # no temp file, no part of the half-written run


def test_score_on_a_full_disk_is_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store: tuple[Path, tuple[str, ...]],
    tmp_path: Path,
) -> None:
    root, _ = store
    predictions = tmp_path / "outputs.jsonl"
    predictions.write_text(json.dumps({"prediction": "a cat", "reference": "a cat"}) + "\n")
    before = snapshot(root)
    _fail_nth_fsync(monkeypatch, 2, errno.ENOSPC)
    result = cli(
        capsys, "score", "--predictions", str(predictions), "--metrics", "token_f1", "--store", str(root)
    )
    assert_one_error(result, "No space left on device")
    assert snapshot(root) == before


def test_permission_denied_on_the_store_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: tuple[Path, tuple[str, ...]]
) -> None:
    """Simulated, so it runs as root too: opening a new file in the store fails with EACCES."""
    root, _ = store
    before = snapshot(root)
    real_open = os.open

    def refuse(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        if str(path).startswith(str(root)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(harness.files.os, "open", refuse)
    arguments = MOCK_RUN
    assert_one_error(cli(capsys, *arguments, "--store", str(root)), "Permission denied", str(root))
    monkeypatch.undo()
    assert snapshot(root) == before


# A real read-only mount, full disk and unwritable folder: tests/test_bad_input_filesystem.py.


# -- harness store check ------------------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _age(path: Path) -> Path:
    os.utime(path, (HOUR_AGO, HOUR_AGO))
    return path


def test_check_of_a_clean_store(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, tuple[str, ...]]
) -> None:
    root, _ = store
    before = snapshot(root)
    for repair in ([], ["--repair"]):
        result = cli(capsys, "store", "check", "--store", str(root), *repair)
        assert result.code == 0 and result.err == "", result
        assert "clean (3 runs" in result.out
    assert snapshot(root) == before and not (root / "_quarantine").exists()


def test_check_finds_and_repair_moves_what_no_reader_can_use(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, tuple[str, ...]]
) -> None:
    root, ids = store
    damaged = _damage(root, "scores", ids[0], "garbage")
    damaged_runs = _damage(root, "runs", ids[2], "truncated")
    # A writer killed an hour ago, and one writing right now (seconds between its parts and its commit).
    killed = root / "samples" / "part-20260101T000000-killed00.parquet"
    shutil.copy(root / "samples" / f"part-{ids[1]}.parquet", killed)
    _age(killed)
    in_progress = root / "samples" / "part-20260101T000001-writing0.parquet"
    shutil.copy(root / "samples" / f"part-{ids[1]}.parquet", in_progress)
    stale = _age(_touch(root / "scores" / f".part-x.parquet.{_dead_pid()}-abcdef.tmp"))
    legacy_stale = _age(_touch(root / "._harness_store.json.0123456789ab.tmp"))
    live = _age(_touch(root / "runs" / f".part-y.parquet.{os.getpid()}-abcdef.tmp"))
    fresh = _touch(root / "samples" / ".part-z.parquet.abcdef012345.tmp")
    lock = _age(_touch(root / "ratings" / ".export.lock"))
    before = snapshot(root)

    found = cli(capsys, "store", "check", "--store", str(root))
    assert found.code == 1 and found.err == "", found
    assert snapshot(root) == before  # a check alone touches nothing
    report = check_store(root)
    kinds = {finding.path: finding.kind for finding in report.findings}
    assert kinds == {
        damaged: "damaged",
        damaged_runs: "damaged",
        root / "scores" / f"part-{ids[2]}.parquet": "orphaned",
        root / "samples" / f"part-{ids[2]}.parquet": "orphaned",
        killed: "orphaned",
        stale: "stale temp",
        legacy_stale: "stale temp",
    }
    for path in kinds:
        assert str(path.relative_to(root)) in found.out

    repaired = cli(capsys, "store", "check", "--store", str(root), "--repair")
    assert repaired.code == 0 and repaired.err == "", repaired
    (quarantine,) = (root / "_quarantine").iterdir()
    for path in kinds:  # moved, byte for byte, never deleted
        assert not path.exists()
        assert (quarantine / path.relative_to(root)).read_bytes() == before[str(path.relative_to(root))]
    for kept in (in_progress, live, fresh, lock):
        assert kept.exists()
    again = cli(capsys, "store", "check", "--store", str(root))
    assert again.code == 0 and "clean (2 runs" in again.out, again
    # Readers never look into the quarantine: no warnings, the healthy run shows.
    scores = cli(capsys, "scores", "--store", str(root), "--format", "json")
    assert scores.code == 0 and scores.err == "", scores
    assert {row["run_id"] for row in json.loads(scores.out)} == {ids[1]}


def _touch(path: Path) -> Path:
    path.write_bytes(b"half-written")
    return path


def test_check_of_a_missing_store_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_one_error(cli(capsys, "store", "check", "--store", str(tmp_path / "nowhere")), "nowhere")
    (tmp_path / "notes.txt").write_text("not a store")
    assert_one_error(cli(capsys, "store", "check", "--store", str(tmp_path)), "not a harness results store")
    assert not (tmp_path / "nowhere").exists()
