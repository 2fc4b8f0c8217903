"""Leaderboard re-aggregation uses each score's stored signature, so metric settings are honoured."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import harness
from harness.leaderboard.groups import group_report
from harness.leaderboard.sample_metrics import per_sample_values, signature_of, subset_score


def _macro_f1_run(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "tone.jsonl"
    rows = [
        '{"text": "sunny day", "label": "joyful", "who": "a"}',
        '{"text": "rainy day", "label": "melancholy", "who": "a"}',
        '{"text": "storm coming", "label": "tense", "who": "b"}',
        '{"text": "bright morning", "label": "joyful", "who": "b"}',
    ] * 5
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    task = tmp_path / "tone_f1.yaml"
    task.write_text(
        f"task: tone_f1\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{text}}'\n"
        "doc_to_choice: ['joyful', 'melancholy', 'tense']\ndoc_to_target: label\ngroup_field: who\n"
        "metric_list:\n  - metric: f1_macro\n    labels: ['joyful', 'melancholy', 'tense']\n",
        encoding="utf-8",
    )
    report = harness.evaluate("mock:2", [str(task)], store=tmp_path / "store")
    return tmp_path / "store", report.run_id


def test_settings_dependent_metric_reaggregates_like_the_stored_score(tmp_path: Path) -> None:
    store, run_id = _macro_f1_run(tmp_path)
    scores = harness.ResultStore(store).scores(run_id)
    samples = harness.ResultStore(store).samples(run_id)
    signature = signature_of(scores, run_id, "tone_f1", "f1_macro")
    assert signature is not None and "labels" in signature
    stored = float(scores.loc[scores["metric"] == "f1_macro", "value"].iloc[0])
    assert subset_score(samples["statistics"], "f1_macro", signature=signature).value == pytest.approx(stored)
    values = per_sample_values(samples["statistics"], "f1_macro", signature)
    assert values.notna().all()
    report = group_report(samples, "f1_macro", signature=signature)
    assert set(report.table["group"]) == {"a", "b"}
    assert pd.notna(report.gap)
