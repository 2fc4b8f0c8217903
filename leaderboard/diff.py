"""Two runs side by side: per-task differences with intervals, and the documents they disagree on.

The differences come from `harness.compare`: a paired comparison on the documents both runs scored
(McNemar or a paired bootstrap), for every registered metric. Where it refuses the runs (different
task versions, samples that do not reproduce the score), and for derived scores that have no
per-document statistics (per-group values, parity gaps), the differences are computed here from the
stored scores, with an unpaired normal interval, sqrt(se_a² + se_b²): wider than a paired one,
because it ignores that both runs answered the same documents. The `test` column says which each row
got, and `TaskDifferences.note` why any row is unpaired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from harness.compare import REPORT_COLUMNS, compare_runs, markdown_table, report_cells
from harness.errors import HarnessError
from harness.leaderboard.ranking import direction_arrow, metric_higher_is_better
from harness.leaderboard.sample_metrics import known_metric, per_sample_values, signature_of
from harness.leaderboard.sample_output import sample_output
from harness.store import ResultStore

__all__ = [
    "DIFFERENCE_COLUMNS",
    "PAIRED",
    "UNPAIRED",
    "VERDICT_MARKS",
    "TaskDifferences",
    "differences_markdown",
    "directions",
    "disagreements",
    "task_differences",
    "unpaired_differences",
    "verdicts",
]

PAIRED = "paired, on shared documents (harness.compare); see the test column"
UNPAIRED = "unpaired normal interval from the stored scores"
DIFFERENCE_COLUMNS = (
    "task",
    "metric",
    "higher_is_better",
    "baseline",
    "candidate",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "n_baseline",
    "n_candidate",
    "n_shared",
    "test",
)
BETTER, WORSE, UNCLEAR = "candidate better", "candidate worse", "no clear difference"
# The gate's report marks a pass ✅ and a failure ❌; here the same marks say better and worse.
VERDICT_MARKS = {BETTER: "✅", WORSE: "❌", UNCLEAR: "➖"}


@dataclass(frozen=True)
class TaskDifferences:
    table: pd.DataFrame  # DIFFERENCE_COLUMNS; difference = candidate - baseline; `test` per row
    method: str  # PAIRED (where possible) or UNPAIRED (throughout)
    note: str | None = None  # why some or all rows are unpaired


def unpaired_differences(
    scores: pd.DataFrame, baseline: str, candidate: str, *, confidence: float = 0.95
) -> pd.DataFrame:
    """Candidate minus baseline per shared task × metric, from the stored values and stderrs."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    columns = ["task", "metric", "value", "stderr", "ci_low", "ci_high", "n", "higher_is_better"]
    base = scores.loc[scores["run_id"] == baseline, columns]
    cand = scores.loc[scores["run_id"] == candidate, columns]
    merged = base.merge(cand, on=["task", "metric"], suffixes=("_b", "_c"))
    if merged.empty:
        return pd.DataFrame(columns=list(DIFFERENCE_COLUMNS))

    def stderr(side: str) -> pd.Series:
        # Bootstrap intervals are stored with a stderr too; a missing stderr is read from the interval.
        half = (merged[f"ci_high_{side}"].astype(float) - merged[f"ci_low_{side}"].astype(float)) / (2 * z)
        return merged[f"stderr_{side}"].astype(float).fillna(half)

    difference = merged["value_c"].astype(float) - merged["value_b"].astype(float)
    spread = np.sqrt(stderr("b") ** 2 + stderr("c") ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_scores = np.asarray(np.abs(difference) / spread, dtype=float)
    # A zero spread with a non-zero difference gives z = inf and p = 0; with no difference, NaN.
    p_values = [math.nan if math.isnan(value) else 2 * (1 - NormalDist().cdf(value)) for value in z_scores]
    return pd.DataFrame(
        {
            "task": merged["task"],
            "metric": merged["metric"],
            "higher_is_better": merged["higher_is_better_b"].astype(bool),
            "baseline": merged["value_b"].astype(float),
            "candidate": merged["value_c"].astype(float),
            "difference": difference,
            "ci_low": difference - z * spread,
            "ci_high": difference + z * spread,
            "p_value": p_values,
            "n_baseline": merged["n_b"].astype("Int64"),
            "n_candidate": merged["n_c"].astype("Int64"),
            "n_shared": pd.Series(pd.NA, index=merged.index, dtype="Int64"),
            "test": "unpaired_normal",
        }
    ).sort_values(["task", "metric"], ignore_index=True)


def _paired(
    root: str, baseline: str, candidate: str, pairs: list[tuple[str, str]], confidence: float
) -> pd.DataFrame:
    result = compare_runs(ResultStore(root), baseline, candidate, pairs=pairs, confidence=confidence)
    frame = result.to_frame()
    if frame.empty:
        return pd.DataFrame(columns=list(DIFFERENCE_COLUMNS))
    # `baseline` and `candidate` are the values on the shared documents, so they subtract to the
    # difference shown next to them even when one run scored more documents.
    for column in DIFFERENCE_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    return frame[list(DIFFERENCE_COLUMNS)]


def task_differences(
    root: str, scores: pd.DataFrame, baseline: str, candidate: str, *, confidence: float = 0.95
) -> TaskDifferences:
    """Paired differences from `harness.compare` where it can pair, unpaired from stored scores otherwise.

    Only registered metrics can be paired (their per-document statistics are in the samples);
    derived scores such as per-group values are compared from their stored values and errors.
    """
    unpaired = unpaired_differences(scores, baseline, candidate, confidence=confidence)
    keys = list(zip(unpaired["task"], unpaired["metric"], strict=True))
    pairable = [
        key
        for key in keys
        if known_metric(str(key[1]), signature_of(scores, baseline, str(key[0]), str(key[1]))) is not None
    ]
    if not pairable:
        note = "No shared score has per-document statistics to pair."
        return TaskDifferences(table=unpaired, method=UNPAIRED, note=note)
    try:
        paired = _paired(root, baseline, candidate, pairable, confidence)
    except HarnessError as error:
        note = f"The paired comparison refused these runs: {error}"
        return TaskDifferences(table=unpaired, method=UNPAIRED, note=note)
    rest = unpaired[[key not in set(pairable) for key in keys]]
    table = pd.concat([paired, rest], ignore_index=True) if not rest.empty else paired
    mixed = f"{len(rest)} derived score(s) without per-document statistics are compared unpaired."
    table = table.sort_values(["task", "metric"], ignore_index=True)
    return TaskDifferences(table=table, method=PAIRED, note=None if rest.empty else mixed)


def directions(table: pd.DataFrame) -> pd.Series:
    """Per row, whether higher is better for its metric: the metric registry's word, else the stored flag."""
    pairs = zip(table["metric"].astype(str), table["higher_is_better"].astype(bool), strict=True)
    return pd.Series(
        [metric_higher_is_better(metric, stored) for metric, stored in pairs], index=table.index, dtype=bool
    )


def verdicts(table: pd.DataFrame) -> pd.Series:
    """ "candidate better" / "candidate worse" when the whole interval says so, else "no clear difference".

    The metric's direction is folded in, so a fall in perplexity reads as better.
    """
    sign = np.where(directions(table).to_numpy(), 1.0, -1.0)
    low = table["ci_low"].astype(float).to_numpy() * sign
    high = table["ci_high"].astype(float).to_numpy() * sign
    result = np.full(len(table), UNCLEAR, dtype=object)
    result[np.minimum(low, high) > 0] = BETTER
    result[np.maximum(low, high) < 0] = WORSE
    return pd.Series(result, index=table.index, name="verdict")


def differences_markdown(result: TaskDifferences, baseline: str, candidate: str) -> str:
    """The per-task differences as `harness gate --markdown` writes its report: a title with the
    verdict counts, how the intervals were made, then one row per task × metric marked ✅ (candidate
    better), ❌ (worse) or ➖ (no clear difference), in the gate's columns plus the metric's direction."""
    table = result.table
    marks = verdicts(table) if not table.empty else pd.Series(dtype=object)
    arrows = directions(table) if not table.empty else pd.Series(dtype=bool)
    counts = {verdict: int((marks == verdict).sum()) for verdict in VERDICT_MARKS}
    rows = [
        [VERDICT_MARKS[str(marks[index])], *report_cells(row.to_dict()), direction_arrow(bool(arrows[index]))]
        for index, row in table.iterrows()
    ]
    lines = [
        f"### harness compare: candidate `{candidate}` vs baseline `{baseline}`",
        "",
        f"{counts[BETTER]} better, {counts[WORSE]} worse, {counts[UNCLEAR]} without a clear difference. "
        f"Differences are candidate − baseline; interval: {result.method}."
        + (f" {result.note}" if result.note else ""),
        "",
        markdown_table(["", *REPORT_COLUMNS, "better"], rows),
    ]
    return "\n".join(lines) + "\n"


def disagreements(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    metric: str,
    *,
    only_differing: bool = True,
    signature: str | None = None,
) -> pd.DataFrame:
    """Shared documents of one task, the largest disagreement on `metric` first.

    Two runs disagree on a document when its metric values differ or their outputs differ.
    Columns: doc_id, prompt, target, baseline_output, candidate_output, baseline_value,
    candidate_value, difference (candidate - baseline).
    """

    def side(frame: pd.DataFrame) -> pd.DataFrame:
        metadata = frame["metadata"] if "metadata" in frame.columns else [None] * len(frame)
        outputs = [
            sample_output(prediction, logprobs, meta)
            for prediction, logprobs, meta in zip(
                frame["prediction"], frame["choice_logprobs"], metadata, strict=True
            )
        ]
        return pd.DataFrame(
            {
                "doc_id": frame["doc_id"].astype("int64"),
                "prompt": frame["prompt"].astype(str),
                "target": frame["target"].astype(str),
                "output": outputs,
                "value": per_sample_values(frame["statistics"], metric, signature).to_numpy(dtype=float),
            }
        ).drop_duplicates("doc_id")

    merged = side(baseline).merge(side(candidate), on="doc_id", suffixes=("_b", "_c"))
    table = pd.DataFrame(
        {
            "doc_id": merged["doc_id"],
            "prompt": merged["prompt_b"],
            "target": merged["target_b"],
            "baseline_output": merged["output_b"],
            "candidate_output": merged["output_c"],
            "baseline_value": merged["value_b"],
            "candidate_value": merged["value_c"],
            "difference": merged["value_c"] - merged["value_b"],
        }
    )
    if only_differing:
        same_value = np.isclose(
            table["baseline_value"], table["candidate_value"], rtol=1e-9, atol=0.0, equal_nan=True
        )
        same_output = table["baseline_output"] == table["candidate_output"]
        table = table[~(same_value & same_output)]
    order = table["difference"].abs().fillna(-1.0)
    table = table.assign(_order=order).sort_values(["_order", "doc_id"], ascending=[False, True])
    return table.drop(columns="_order").reset_index(drop=True)
