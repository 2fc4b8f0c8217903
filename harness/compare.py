"""Paired comparison of two stored runs: per task and metric, the difference on shared samples only.

Two runs are compared on the documents both scored (matched by task and doc id), never on their
reported corpus values alone: a paired test on shared samples is far more sensitive than comparing
two independent intervals, and it stays honest when one run used `--limit` or a newer task file.

* Accuracy-type metrics (a 0/1 value per document) use McNemar's test: exact binomial over the
  discordant documents (chi-square with continuity correction only past `_EXACT_LIMIT` of them).
* Every other metric uses a paired bootstrap. `metrics.bootstrap_replicates` draws resamples that
  depend only on (seed, n, resamples), so the same seed gives the same resampled documents for both
  runs and the difference of their replicates is the paired bootstrap distribution.

The confidence interval of the difference is always the paired bootstrap percentile interval.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.metrics import Metric, bootstrap_replicates, metric_from_signature
from harness.metrics.base import is_derived_metric
from harness.store import ResultStore, resolve_run
from harness.store.statistics import statistic_keys, statistics_matrix

__all__ = [
    "REPORT_COLUMNS",
    "MetricComparison",
    "RunComparison",
    "compare",
    "compare_runs",
    "compare_statistics",
    "markdown_cell",
    "markdown_table",
    "mcnemar_p_value",
    "report_cells",
]

# Past this many discordant documents the exact binomial sum gets slow and the chi-square
# approximation is already excellent.
_EXACT_LIMIT = 10_000
# Stored values are recomputed from the stored samples before comparing; a larger gap means the
# samples do not describe the score (a different aggregation or lost samples), so refuse.
_REPRODUCE_RTOL = 1e-6


@dataclass(frozen=True)
class MetricComparison:
    """One task × metric: candidate minus baseline on the shared documents, with its uncertainty."""

    task: str
    metric: str
    higher_is_better: bool
    test: str  # "mcnemar" or "paired_bootstrap"
    n_baseline: int  # documents each run scored for this task
    n_candidate: int
    n_shared: int
    baseline: float  # metric value on the shared documents
    candidate: float
    baseline_reported: float  # the stored corpus value (all of the run's documents)
    candidate_reported: float
    difference: float  # candidate - baseline, in metric units
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float  # two-sided, null hypothesis: no difference
    # McNemar only: documents only the baseline got right, and only the candidate got right.
    baseline_only: int | None = None
    candidate_only: int | None = None

    @property
    def drop(self) -> float:
        """How much worse the candidate is, in metric units; negative when it is better.

        For lower-is-better metrics (perplexities) a rise is a drop in quality.
        """
        return -self.difference if self.higher_is_better else self.difference

    @property
    def relative_drop(self) -> float:
        """The drop as a fraction of the baseline value on the shared documents."""
        if self.baseline == 0:
            return math.inf if self.drop > 0 else (0.0 if self.drop == 0 else -math.inf)
        return self.drop / abs(self.baseline)


@dataclass(frozen=True)
class RunComparison:
    baseline_run: str
    candidate_run: str
    comparisons: tuple[MetricComparison, ...]
    # (task, metric) pairs only one of the two runs has: reported, never compared.
    only_baseline: tuple[tuple[str, str], ...] = ()
    only_candidate: tuple[tuple[str, str], ...] = ()
    resamples: int = 0
    seed: int = 0

    def get(self, task: str, metric: str) -> MetricComparison:
        for comparison in self.comparisons:
            if comparison.task == task and comparison.metric == metric:
                return comparison
        raise KeyError((task, metric))

    def to_frame(self) -> pd.DataFrame:
        rows = [{**c.__dict__, "drop": c.drop, "relative_drop": c.relative_drop} for c in self.comparisons]
        return pd.DataFrame(rows)


# -- statistics -------------------------------------------------------------------------------------


def mcnemar_p_value(baseline_only: int, candidate_only: int) -> float:
    """Two-sided McNemar p-value from the two discordant counts."""
    discordant = baseline_only + candidate_only
    if discordant == 0:
        return 1.0
    smaller = min(baseline_only, candidate_only)
    if discordant <= _EXACT_LIMIT:
        # Exact binomial (n = discordant, p = 1/2) in integers: no rounding until the final division.
        tail = sum(math.comb(discordant, k) for k in range(smaller + 1))
        return min(1.0, 2 * tail / 2**discordant)
    chi_square = (abs(baseline_only - candidate_only) - 1) ** 2 / discordant
    return math.erfc(math.sqrt(chi_square / 2))


def _is_binary(metric: Metric, stats: np.ndarray) -> bool:
    return bool(
        metric.is_mean
        and stats.shape[1] == 2
        and np.all(stats[:, 1] == 1.0)
        and np.all((stats[:, 0] == 0.0) | (stats[:, 0] == 1.0))
    )


def compare_statistics(
    metric: Metric,
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    task: str = "",
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    n_baseline: int | None = None,
    n_candidate: int | None = None,
    baseline_reported: float | None = None,
    candidate_reported: float | None = None,
) -> MetricComparison:
    """Paired comparison of per-document statistics (n, k) of the same n documents, in the same order."""
    baseline = np.asarray(baseline, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if baseline.shape != candidate.shape or baseline.ndim != 2:
        raise ValueError(
            f"paired statistics must have equal (n, k) shapes: {baseline.shape}, {candidate.shape}"
        )
    n = baseline.shape[0]
    if n == 0:
        raise HarnessError(f"task '{task}': the two runs share no samples, so there is nothing to compare")
    if resamples < 2:
        raise HarnessError(f"bootstrap resamples must be at least 2, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise HarnessError(f"confidence must be between 0 and 1, got {confidence}")
    base_value = float(metric.aggregate(baseline.sum(axis=0)))
    cand_value = float(metric.aggregate(candidate.sum(axis=0)))
    # The same seed and n give the same resampled documents for both runs: a paired bootstrap.
    replicates = bootstrap_replicates(metric, candidate, resamples, seed) - bootstrap_replicates(
        metric, baseline, resamples, seed
    )
    replicates = replicates[np.isfinite(replicates)]
    tail = (1.0 - confidence) / 2
    if replicates.size:
        low, high = (float(v) for v in np.quantile(replicates, [tail, 1.0 - tail]))
    else:
        low = high = math.nan
    baseline_only = candidate_only = None
    if _is_binary(metric, baseline) and _is_binary(metric, candidate):
        test = "mcnemar"
        baseline_only = int(np.sum((baseline[:, 0] == 1) & (candidate[:, 0] == 0)))
        candidate_only = int(np.sum((baseline[:, 0] == 0) & (candidate[:, 0] == 1)))
        p_value = mcnemar_p_value(baseline_only, candidate_only)
    else:
        test = "paired_bootstrap"
        # Two-sided percentile p-value: it is below alpha exactly when the (1 - alpha) percentile
        # interval excludes zero; the +1 keeps it above zero for a finite number of resamples.
        below = (np.count_nonzero(replicates <= 0) + 1) / (replicates.size + 1)
        above = (np.count_nonzero(replicates >= 0) + 1) / (replicates.size + 1)
        p_value = min(1.0, 2 * min(below, above))
    return MetricComparison(
        task=task,
        metric=metric.name,
        higher_is_better=metric.higher_is_better,
        test=test,
        n_baseline=n if n_baseline is None else n_baseline,
        n_candidate=n if n_candidate is None else n_candidate,
        n_shared=n,
        baseline=base_value,
        candidate=cand_value,
        baseline_reported=base_value if baseline_reported is None else baseline_reported,
        candidate_reported=cand_value if candidate_reported is None else candidate_reported,
        difference=cand_value - base_value,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=p_value,
        baseline_only=baseline_only,
        candidate_only=candidate_only,
    )


# -- runs from the store ----------------------------------------------------------------------------


def _statistics(frame: pd.DataFrame, metric: Metric, run_id: str, task: str) -> np.ndarray:
    """The (n, k) statistics matrix, in `metric.statistic_names` order, from the samples' statistics."""
    matrix, found = statistics_matrix(frame["statistics"], metric)
    if not found.all():
        keys = statistic_keys(metric.name, metric.statistic_names)
        raise HarnessError(
            f"run {run_id} task '{task}': samples lack the per-document statistics of "
            f"'{metric.name}' ({', '.join(keys)}), so it cannot be compared"
        )
    return matrix


def _check_reproduced(metric: Metric, stats: np.ndarray, reported: float, run_id: str, task: str) -> None:
    if stats.shape[0] == 0:
        raise HarnessError(f"run {run_id} has no stored samples for task '{task}'")
    value = float(metric.aggregate(stats.sum(axis=0)))
    if not np.isclose(value, reported, rtol=_REPRODUCE_RTOL, atol=1e-12, equal_nan=True):
        raise HarnessError(
            f"run {run_id} {task}/{metric.name}: its stored samples give {value:.6g}, not the stored "
            f"score {reported:.6g}; refusing to compare numbers the samples do not explain"
        )


def _signature_core(signature: str, ignore_harness_version: bool) -> str:
    if not ignore_harness_version:
        return signature
    return "|".join(part for part in signature.split("|") if not part.startswith("harness:"))


def _score_rows(store: ResultStore, run_id: str) -> dict[tuple[str, str], pd.Series]:
    frame = store.scores(run_id)
    if frame.empty and run_id not in set(store.runs()["run_id"]):
        raise HarnessError(f"unknown run '{run_id}' in {store.root}")
    # Fairness and per-group rows summarise subsets of the samples, not one per-sample statistic, so
    # there is nothing to pair document by document; compare and gate consider task metrics only.
    return {
        (str(row["task"]), str(row["metric"])): row
        for _, row in frame.iterrows()
        if not is_derived_metric(str(row["metric"]))
    }


def _check_comparable(
    base: pd.Series, cand: pd.Series, key: tuple[str, str], ignore_harness_version: bool
) -> None:
    task, metric = key
    if base["task_version"] != cand["task_version"]:
        raise HarnessError(
            f"task '{task}' has version {base['task_version']} in the baseline but "
            f"{cand['task_version']} in the candidate; refusing to compare different task definitions"
        )
    base_sig = _signature_core(str(base["signature"]), ignore_harness_version)
    cand_sig = _signature_core(str(cand["signature"]), ignore_harness_version)
    if base_sig != cand_sig:
        raise HarnessError(
            f"{task}/{metric} has metric signature '{base['signature']}' in the baseline but "
            f"'{cand['signature']}' in the candidate; refusing to compare differently computed numbers"
        )


def _shared_samples(
    samples: tuple[pd.DataFrame, pd.DataFrame], baseline_run: str, candidate_run: str, task: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' samples of `task` restricted to shared doc ids, aligned row by row."""
    frames = []
    for run_id, frame in zip((baseline_run, candidate_run), samples, strict=True):
        if frame["doc_id"].duplicated().any():
            raise HarnessError(f"run {run_id} stores some documents of task '{task}' more than once")
        frames.append(frame.set_index("doc_id"))
    base, cand = frames
    shared = base.index.intersection(cand.index).sort_values()
    if len(shared) == 0:
        raise HarnessError(
            f"runs {baseline_run} and {candidate_run} share no samples of task '{task}' "
            f"({len(base)} and {len(cand)} documents); nothing to compare"
        )
    base_shared, cand_shared = base.loc[shared], cand.loc[shared]
    # Equal doc ids must be the same documents; differing targets mean differently built task data.
    differing = shared[base_shared["target"].to_numpy() != cand_shared["target"].to_numpy()]
    if len(differing):
        raise HarnessError(
            f"task '{task}': {len(differing)} shared doc ids (first: {differing[0]}) have different "
            f"targets in the two runs; they did not score the same documents"
        )
    return base_shared, cand_shared


def compare_runs(
    store: ResultStore,
    baseline_run: str,
    candidate_run: str,
    *,
    pairs: Collection[tuple[str, str]] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    ignore_harness_version: bool = False,
) -> RunComparison:
    """Compare every (task, metric) both runs have, or only `pairs` (each must be in both runs)."""
    base_scores = _score_rows(store, baseline_run)
    cand_scores = _score_rows(store, candidate_run)
    shared_keys = sorted(set(base_scores) & set(cand_scores))
    if pairs is not None:
        for key in pairs:
            for name, scores, run_id in (
                ("baseline", base_scores, baseline_run),
                ("candidate", cand_scores, candidate_run),
            ):
                if key not in scores:
                    raise HarnessError(f"the {name} run {run_id} has no score for {key[0]}/{key[1]}")
        shared_keys = sorted(set(pairs))
    if not shared_keys:
        raise HarnessError(f"runs {baseline_run} and {candidate_run} have no task and metric in common")
    for key in shared_keys:
        _check_comparable(base_scores[key], cand_scores[key], key, ignore_harness_version)
    comparisons: list[MetricComparison] = []
    for task in sorted({task for task, _ in shared_keys}):
        base_all = store.samples(baseline_run, task)
        cand_all = store.samples(candidate_run, task)
        base_shared, cand_shared = _shared_samples((base_all, cand_all), baseline_run, candidate_run, task)
        for _, metric_name in (key for key in shared_keys if key[0] == task):
            base_row, cand_row = base_scores[(task, metric_name)], cand_scores[(task, metric_name)]
            # Settings can change a metric's statistics and aggregation (BLEU's n-gram order), so the
            # metric is rebuilt from the signature, which _check_comparable found equal in both runs.
            metric = metric_from_signature(str(base_row["signature"]))
            checks = ((baseline_run, base_all, base_row), (candidate_run, cand_all, cand_row))
            for run_id, frame, row in checks:
                stats = _statistics(frame, metric, run_id, task)
                _check_reproduced(metric, stats, float(row["value"]), run_id, task)
            comparisons.append(
                compare_statistics(
                    metric,
                    _statistics(base_shared, metric, baseline_run, task),
                    _statistics(cand_shared, metric, candidate_run, task),
                    task=task,
                    resamples=resamples,
                    seed=seed,
                    confidence=confidence,
                    n_baseline=len(base_all),
                    n_candidate=len(cand_all),
                    baseline_reported=float(base_row["value"]),
                    candidate_reported=float(cand_row["value"]),
                )
            )
    return RunComparison(
        baseline_run=baseline_run,
        candidate_run=candidate_run,
        comparisons=tuple(comparisons),
        only_baseline=tuple(sorted(set(base_scores) - set(cand_scores))),
        only_candidate=tuple(sorted(set(cand_scores) - set(base_scores))),
        resamples=resamples,
        seed=seed,
    )


def compare(
    store: ResultStore,
    baseline: str,
    candidate: str,
    *,
    tasks: Collection[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    ignore_harness_version: bool = False,
) -> RunComparison:
    """`harness compare`: two runs named by selectors (`harness.store.resolve_run`), on every task and
    metric they share, or on the baseline's metrics of `tasks` only."""
    baseline_run, candidate_run = resolve_run(store, baseline), resolve_run(store, candidate)
    pairs = None
    if tasks:
        wanted = set(tasks)
        pairs = [key for key in _score_rows(store, baseline_run) if key[0] in wanted]
        missing = wanted - {task for task, _ in pairs}
        if missing:
            raise HarnessError(f"the baseline run {baseline_run} has no task '{sorted(missing)[0]}'")
    return compare_runs(
        store,
        baseline_run,
        candidate_run,
        pairs=pairs,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
        ignore_harness_version=ignore_harness_version,
    )


# -- report cells -----------------------------------------------------------------------------------
# One wording of a comparison row for every report that shows one (the leaderboard's Compare export;
# the gate's reports use the same columns).

REPORT_COLUMNS = ("task", "metric", "baseline", "candidate", "diff", "CI", "p", "n shared/base/cand", "test")


def _report_number(value: object, spec: str) -> str:
    number = float(value) if isinstance(value, int | float | np.number) else math.nan
    return "" if math.isnan(number) else format(number, spec)


def _report_count(value: object) -> str:
    return str(int(value)) if isinstance(value, int | float | np.number) and not math.isnan(value) else "–"


def report_cells(row: Mapping[str, object]) -> tuple[str, ...]:
    """Cells of REPORT_COLUMNS for a row with MetricComparison's field names (`comparison.__dict__`, or a
    table row where an unpaired comparison has no shared count)."""
    p_value = row.get("p_value")
    p_text = _report_number(p_value, ".4f")
    if p_text and float(p_value) < 1e-4:  # type: ignore[arg-type]
        p_text = "<0.0001"
    low, high = _report_number(row.get("ci_low"), "+.4f"), _report_number(row.get("ci_high"), "+.4f")
    counts = "/".join(_report_count(row.get(key)) for key in ("n_shared", "n_baseline", "n_candidate"))
    return (
        str(row.get("task")),
        str(row.get("metric")),
        _report_number(row.get("baseline"), ".4f"),
        _report_number(row.get("candidate"), ".4f"),
        _report_number(row.get("difference"), "+.4f"),
        f"[{low}, {high}]" if low and high else "",
        p_text,
        counts,
        str(row.get("test", "")),
    )


def markdown_cell(text: str) -> str:
    """One Markdown table cell's text, escaped."""
    # A pipe would end the cell and a newline the row.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table, every cell escaped."""
    lines = [
        "| " + " | ".join(markdown_cell(cell) for cell in header) + " |",
        "|" + "|".join(["---"] * len(header)) + "|",
        *("| " + " | ".join(markdown_cell(cell) for cell in row) + " |" for row in rows),
    ]
    return "\n".join(lines)
