"""`harness audit`: representation and label balance of a data file, per group and intersection, stored
as a run; an under-represented intersection is flagged; bad input is one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from harness.audit import audit, audit_data, wilson_interval
from harness.fairness.scores import signature_settings
from harness.store import ResultStore


def _write_rows(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _skewed_rows(n: int = 800, seed: int = 0) -> list[dict[str, object]]:
    """gender x age, where older women are deliberately rare (about 4% of rows instead of ~15%)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for index in range(n):
        gender = str(rng.choice(["woman", "man"]))
        age = str(rng.choice(["young", "old"]))
        if gender == "woman" and age == "old" and rng.random() < 0.85:
            age = "young"
        label = str(rng.choice(["approve", "deny"], p=[0.3, 0.7] if gender == "woman" else [0.6, 0.4]))
        rows.append({"id": index, "gender": gender, "age": age, "label": label})
    return rows


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize(("count", "total"), [(0, 10), (3, 40), (17, 50), (40, 40), (123, 800)])
def test_wilson_interval_equals_scipy(count: int, total: int) -> None:
    expected = binomtest(count, total).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(count, total)
    assert low == pytest.approx(expected.low, abs=1e-12) and high == pytest.approx(expected.high, abs=1e-12)


def test_an_under_represented_intersection_is_flagged(tmp_path: Path) -> None:
    data = _write_rows(tmp_path / "applicants.jsonl", _skewed_rows())
    found = audit_data(data, ["gender", "age"], "label", bootstrap_resamples=100, permutations=100)
    flagged = {row.group: row.flag for row in found.flagged}
    assert flagged == {"gender=woman&age=old": "under_represented"}
    cell = next(row for row in found.representation if row.group == "gender=woman&age=old")
    frame = pd.DataFrame(_skewed_rows())
    assert cell.count == int(((frame["gender"] == "woman") & (frame["age"] == "old")).sum())
    shares = {value: (frame["gender"] == value).mean() for value in ("woman",)}
    old = (frame["age"] == "old").mean()
    assert cell.expected == pytest.approx(shares["woman"] * old)  # what independence predicts
    assert cell.ci_high < 0.5 * cell.expected
    # Fields alone are audited against equal shares; here both genders are near half.
    genders = {row.group: row for row in found.representation if row.fields == ("gender",)}
    assert set(genders) == {"gender=man", "gender=woman"} and not any(row.flag for row in genders.values())
    # Label balance: women are approved far less often, and the permutation test says so.
    labels = {score.metric: score for score in found.label_scores}
    gap = labels["fairness/label=approve/difference/gender"]
    assert gap.value == pytest.approx(
        abs(
            frame.loc[frame.gender == "man", "label"].eq("approve").mean()
            - frame.loc[frame.gender == "woman", "label"].eq("approve").mean()
        )
    )
    assert signature_settings(gap.signature)["p_value"] < 0.05


def test_missing_combinations_are_listed_with_no_rows(tmp_path: Path) -> None:
    rows = [{"g": g, "a": a} for g, a in [("x", "1")] * 20 + [("y", "2")] * 20 + [("x", "2")] * 20]
    found = audit_data(
        _write_rows(tmp_path / "d.jsonl", rows), ["g", "a"], bootstrap_resamples=0, permutations=0
    )
    missing = [row for row in found.representation if row.flag == "missing"]
    assert [(row.group, row.count) for row in missing] == [("g=y&a=1", 0)]


def test_the_cli_stores_the_audit_as_a_run(tmp_path: Path) -> None:
    data = _write_rows(tmp_path / "applicants.jsonl", _skewed_rows())
    store = tmp_path / "store"
    result = _harness(
        "audit",
        str(data),
        "--group-field",
        "gender,age",
        "--label-field",
        "label",
        "--store",
        str(store),
        "--bootstrap-resamples",
        "100",
        "--permutations",
        "100",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert {row["flag"] for row in shown["representation"]} == {"", "under_represented"}
    assert "audit: under_represented: gender=woman&age=old" in result.stderr
    runs = ResultStore(store).runs()
    assert runs["model"].tolist() == ["data:applicants.jsonl"]
    scores = ResultStore(store).scores()
    assert set(scores["task"]) == {"audit/applicants.jsonl"}
    cell = scores.set_index("metric").loc["group/representation/gender=woman&age=old"]
    assert signature_settings(str(cell["signature"]))["flag"] == "under_represented"


def _bad(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    store = tmp_path / "store"
    result = _harness(
        "audit", *args, "--store", str(store), "--permutations", "10", "--bootstrap-resamples", "10"
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not store.exists() or ResultStore(store).runs().empty  # nothing half-written
    return result


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    data = _write_rows(tmp_path / "d.jsonl", _skewed_rows(100))
    assert "no field 'region'" in _bad(tmp_path, str(data), "--group-field", "region").stderr
    assert (
        "no field 'outcome'"
        in _bad(tmp_path, str(data), "--group-field", "gender", "--label-field", "outcome").stderr
    )
    one = _write_rows(tmp_path / "one.jsonl", [{"gender": "woman", "age": str(i % 2)} for i in range(30)])
    assert "one group only ('woman')" in _bad(tmp_path, str(one), "--group-field", "gender").stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"gender": "woman"}\n{"gender": \n', encoding="utf-8")
    assert "cannot read" in _bad(tmp_path, str(broken), "--group-field", "gender").stderr
    assert "no such file" in _bad(tmp_path, str(tmp_path / "absent.csv"), "--group-field", "gender").stderr
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 not really parquet")
    assert "cannot read" in _bad(tmp_path, str(damaged), "--group-field", "gender").stderr


def test_csv_files_and_the_python_api_without_a_store(tmp_path: Path) -> None:
    frame = pd.DataFrame(_skewed_rows(200))
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    report = audit(path, ["gender"], write=False, bootstrap_resamples=0, permutations=0)
    assert report.store is None
    shares = {row.group: row.share for row in report.audit.representation}
    assert shares["woman"] == pytest.approx((frame["gender"] == "woman").mean())  # one field: plain names
