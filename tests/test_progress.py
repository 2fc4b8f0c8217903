"""Run progress (task k/N, requests left, ETA beside each task's bar) and quiet library warnings."""

from __future__ import annotations

import io
import re
import sys
import textwrap
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.adapters.base import ProgressCallback
from harness.adapters.mock import MockAdapter
from harness.cli import main
from harness.errors import HarnessWarning
from harness.progress import RunProgress, format_duration, quiet_library_warnings
from harness.requests import LoglikelihoodRequest, LoglikelihoodResult
from harness.runner import evaluate_tasks
from harness.tasks import resolve_tasks


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (4.6, "0:05"), (65, "1:05"), (3599, "59:59"), (3723, "1:02:03")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_run_line_counts_tasks_requests_left_and_the_eta() -> None:
    clock, stream = _Clock(), io.StringIO()
    progress = RunProgress([("a", 10), ("b", 30), ("c", 60)], stream=stream, clock=clock)
    assert progress.run_text() == "run: 100 requests left, ETA …"  # no pace yet
    progress.served_from_cache(4)  # a's cached answers are done at once
    progress.start_task("a", 6)
    clock.now += 3.0
    progress.advance(6, "50 tok/s")
    # 6 requests took 3 s; 90 are left: 45 s at that pace.
    assert progress.run_text() == "run: 90 requests left, ETA 0:45"
    progress.end_task()
    progress.start_task("b", 30)
    assert progress.description("b") == "[2/3] b"
    clock.now += 10.0
    progress.advance(10)
    assert progress.run_text() == "run: 80 requests left, ETA 1:05"  # 16 in 13 s
    progress.close()
    text = stream.getvalue()
    assert "[1/3] a" in text and "[2/3] b" in text and "50 tok/s | run: 90 requests left, ETA 0:45" in text


class _SlowModel(MockAdapter):
    """Answers a whole task in one batch that takes longer than the first update may wait."""

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        time.sleep(2.6)
        return super().loglikelihood(requests, progress)


def test_the_bar_moves_within_seconds_while_the_model_works(capsys: pytest.CaptureFixture[str]) -> None:
    tasks = resolve_tasks(["harness_tone", "harness_reading_mc"])
    evaluate_tasks(_SlowModel(), tasks, limit=2, bootstrap_resamples=0, show_progress=True)
    err = capsys.readouterr().err
    assert "[1/2] harness_tone" in err and "[2/2] harness_reading_mc" in err
    assert "run: 18 requests left, ETA …" in err  # before any answer: tone's 10 and reading's 8 requests
    # Redrawn while the one batch runs: elapsed time moves on before any request is done. The first draw
    # shows 00:00; the 2.6 s batch spans two ticks, and a later stamp from at least one of them is enough,
    # since a loaded machine may delay a tick.
    stamps = set(re.findall(r"0/10 \[(\d\d:\d\d)<\?", err))
    assert "00:00" in stamps and len(stamps) >= 2, stamps
    assert "run: 0 requests left" in err


def test_progress_off_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    evaluate_tasks(
        MockAdapter(), resolve_tasks(["harness_tone"]), limit=2, bootstrap_resamples=0, show_progress=False
    )
    assert capsys.readouterr().err == ""


def _warn_all() -> None:
    warnings.warn("past_key_values is deprecated", FutureWarning, stacklevel=1)
    warnings.warn("old API", DeprecationWarning, stacklevel=1)
    warnings.warn("documents with empty fields", HarnessWarning, stacklevel=1)


@pytest.mark.parametrize("debug", [False, True])
def test_library_warnings_are_quiet_unless_debug(debug: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_library_warnings(debug):
            _warn_all()
    categories = {found.category for found in caught}
    assert HarnessWarning in categories  # our own warnings always show
    assert (FutureWarning in categories) is debug and (DeprecationWarning in categories) is debug


MODEL_MODULE = '''
import warnings

from harness.adapters.mock import MockAdapter


class Noisy(MockAdapter):
    """Warns as transformers does on every generate call (deprecate_kwarg's FutureWarning)."""

    def loglikelihood(self, requests, progress=None):
        warnings.warn("`past_key_values` is deprecated; use `cache`", FutureWarning, stacklevel=2)
        return super().loglikelihood(requests, progress)


def build():
    return Noisy(name="noisy")
'''


@pytest.mark.parametrize("debug", [False, True])
def test_the_cli_hides_a_models_future_warning_unless_debug(
    debug: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"noisy_model_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODEL_MODULE), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        args = ["run", "--model", f"python:{name}:build", "--tasks", "harness_tone", "--limit", "10"]
        code = main(
            [*(["--debug"] if debug else []), *args, "--store", "store", "--bootstrap-resamples", "0"]
        )
    assert code == 0
    shown = [str(found.message) for found in caught if issubclass(found.category, FutureWarning)]
    assert bool(shown) is debug
