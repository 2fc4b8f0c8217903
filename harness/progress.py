"""What a run shows while it works: each task's bar with the run's own progress beside it, and quiet
libraries.

Each task's bar reads `[k/N] task: 40%|████      | 16/40 [00:05<00:07] 180 tok/s | run: 312 requests
left, ETA 1:05`: which task of how many, the task's own requests, and what is left of the whole run with
an estimate of when it ends. Requests answered from the cache count as done at once. A ticker redraws the
bar every second, so elapsed time moves even while the model works through one large batch (the first
update comes within a second of the task starting, not when its first batch returns).

Library deprecation and future warnings (transformers' `past_key_values` FutureWarning, printed in the
middle of a bar on every model run) say nothing about the evaluation; the CLI silences them unless
`--debug`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from tqdm import tqdm

# How often the ticker redraws the current bar (seconds).
TICK_SECONDS = 1.0
# Warning categories that libraries use for API changes, not for anything about the user's evaluation.
LIBRARY_NOISE = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def format_duration(seconds: float) -> str:
    """`0:45`, `12:03`, `1:02:03`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunProgress:
    """Progress of one run over several tasks; `tasks` gives each task's name and distinct requests."""

    def __init__(
        self,
        tasks: Sequence[tuple[str, int]],
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Any = time.perf_counter,
    ) -> None:
        self.names = [name for name, _ in tasks]
        self.enabled = enabled
        self.stream = stream
        self.clock = clock
        self.left = sum(count for _, count in tasks)
        self.task_index = 0
        self.model_requests = 0
        self.model_seconds = 0.0
        self._bar: Any = None
        self._rate_text = ""
        self._task_started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # What the run line says.
    def eta_seconds(self) -> float | None:
        """Seconds until the run ends, from the model's pace so far; None before there is a pace."""
        seconds = self.model_seconds
        if self._bar is not None:
            seconds += self.clock() - self._task_started
        done = self.model_requests + (self._bar.n if self._bar is not None else 0)
        if done == 0 or seconds <= 0:
            return None
        return self.left * seconds / done

    def run_text(self) -> str:
        eta = self.eta_seconds()
        when = format_duration(eta) if eta is not None else "…"
        return f"run: {self.left:,} request{'s' if self.left != 1 else ''} left, ETA {when}"

    def description(self, name: str) -> str:
        position = self.names.index(name) + 1 if name in self.names else self.task_index
        return f"[{position}/{len(self.names)}] {name}"

    # Called by the runner.
    def served_from_cache(self, count: int) -> None:
        with self._lock:
            self.left = max(0, self.left - count)

    def start_task(self, name: str, to_run: int) -> None:
        """The task's bar over the `to_run` requests the model must answer (none: no bar)."""
        self.task_index += 1
        if to_run == 0:
            return
        with self._lock:
            self._task_started = self.clock()
            self._bar = tqdm(
                total=to_run,
                desc=self.description(name),
                unit="req",
                disable=not self.enabled,
                file=self.stream if self.stream is not None else sys.stderr,
                dynamic_ncols=True,
                postfix=self.run_text(),  # the run's line from the first draw on
            )
            if self.enabled and self._ticker is None:
                self._stop.clear()
                self._ticker = threading.Thread(target=self._tick, name="harness-progress", daemon=True)
                self._ticker.start()

    def advance(self, done: int, rate_text: str = "") -> None:
        """`done` more requests answered by the model; `rate_text` (tokens per second) joins the line."""
        with self._lock:
            self.left = max(0, self.left - done)
            self._rate_text = rate_text
            if self._bar is not None:
                self._bar.set_postfix_str(self._postfix(), refresh=False)
                self._bar.update(done)

    def end_task(self) -> None:
        with self._lock:
            if self._bar is None:
                return
            self.model_requests += self._bar.n
            self.model_seconds += self.clock() - self._task_started
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.close()
            self._bar = None
            self._rate_text = ""

    def close(self) -> None:
        self.end_task()
        self._stop.set()
        ticker = self._ticker
        if ticker is not None:
            ticker.join(timeout=2 * TICK_SECONDS)

    def _postfix(self) -> str:
        return f"{self._rate_text} | {self.run_text()}" if self._rate_text else self.run_text()

    def _tick(self) -> None:
        # Ends by itself between tasks (and after a failed one), so no thread outlives the run.
        while True:
            stopped = self._stop.wait(TICK_SECONDS)
            with self._lock:
                if stopped or self._bar is None:
                    self._ticker = None
                    return
                self._bar.set_postfix_str(self._postfix(), refresh=True)


@contextlib.contextmanager
def quiet_library_warnings(debug: bool) -> Iterator[None]:
    """Silence libraries' deprecation and future warnings (and transformers' advisory ones) unless
    `debug`; warnings of harness's own categories are untouched."""
    if debug:
        yield
        return
    previous = os.environ.get("TRANSFORMERS_NO_ADVISORY_WARNINGS")
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    try:
        with warnings.catch_warnings():
            for category in LIBRARY_NOISE:
                warnings.filterwarnings("ignore", category=category)
            yield
    finally:
        if previous is None:
            os.environ.pop("TRANSFORMERS_NO_ADVISORY_WARNINGS", None)
        else:
            os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = previous


__all__ = ["LIBRARY_NOISE", "TICK_SECONDS", "RunProgress", "format_duration", "quiet_library_warnings"]
