"""The new metrics from a task YAML `metric_list`, through the real runner and store (mock model).

Checks the contract end to end: settings from the YAML reach the metric, scores carry an interval
and a signature, every document's statistics land in `samples`, and re-aggregating them gives the
stored value (so later comparisons can be paired).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sacrebleu
from sklearn.metrics import f1_score

import harness
from harness.errors import HarnessError
from harness.metrics import metric_from_signature

TASK = """\
task: metric_list_check
dataset_path: json
dataset_kwargs:
  data_files:
    test: docs.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Translate: {{source}}"
doc_to_target: targets
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
metric_list:
  - metric: bleu
    tokenize: intl
    smooth_method: floor
    effective_order: true
  - metric: chrf++
  - metric: rougeL
    use_stemmer: true
  - metric: token_f1
  - metric: f1_macro
    labels: [yes, "no", cold, Paris]
    aggregation: mean
    higher_is_better: true
"""
# The mock model answers one of ten words (with a leading space); targets use some of the same words,
# so some answers are right and every metric has something to measure.
WORDS = ["Paris", "blue", "cold", "yes", "no"]
DOCS = [{"source": f"sentence {i}", "targets": [WORDS[i % 5], f"{WORDS[i % 5]} indeed"]} for i in range(40)]


def _task(folder: Path, text: str = TASK) -> Path:
    (folder / "docs.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in DOCS), encoding="utf-8")
    path = folder / "metric_list_check.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_metric_list_settings_reach_the_stored_scores(tmp_path: Path) -> None:
    yaml_path = _task(tmp_path)
    store = tmp_path / "store"
    with pytest.raises(HarnessError, match="quote"):  # YAML reads `yes` as a boolean: refused, not misread
        harness.evaluate("mock:0", [str(yaml_path)], store=store, use_cache=False)
    assert not store.exists()  # refused before anything was written
    yaml_path.write_text(TASK.replace("[yes,", '["yes",').replace(" cold,", ' "cold",'), encoding="utf-8")
    report = harness.evaluate(
        "mock:0", [str(yaml_path)], store=store, use_cache=False, bootstrap_resamples=200
    )
    scores = {score.metric: score for score in report.scores}
    assert list(scores) == ["bleu", "chrf++", "rougeL", "token_f1", "f1_macro"]
    assert "|tokenize:intl|smooth_method:floor|" in scores["bleu"].signature
    assert "|use_stemmer:yes|" in scores["rougeL"].signature
    for score in scores.values():
        assert score.n == len(DOCS) and score.stderr is not None and score.ci_low is not None
        assert 0 < score.value < (100 if score.metric in ("bleu", "chrf++") else 1)

    samples = pd.read_parquet(store / "samples").sort_values("doc_id")
    predictions = samples["prediction"].tolist()
    streams = [[doc["targets"][k] for doc in DOCS] for k in range(2)]  # both targets are references
    reference_bleu = sacrebleu.BLEU(tokenize="intl", smooth_method="floor", effective_order=True)
    assert scores["bleu"].value == pytest.approx(
        reference_bleu.corpus_score(predictions, streams).score, abs=1e-9
    )
    # Classification reads the first target as the gold label and the answer without its space.
    gold, answers = streams[0], [prediction.strip() for prediction in predictions]
    expected_f1 = f1_score(
        gold, answers, labels=["yes", "no", "cold", "Paris"], average="macro", zero_division=0
    )
    assert scores["f1_macro"].value == pytest.approx(expected_f1, abs=1e-12)

    rows = [json.loads(text) for text in samples["statistics"]]
    for name, score in scores.items():
        metric = metric_from_signature(score.signature)
        keys = [name] if len(metric.statistic_names) == 1 else [f"{name}/{s}" for s in metric.statistic_names]
        totals = np.sum([[row[key] for key in keys] for row in rows], axis=0)
        assert float(metric.aggregate(totals)) == pytest.approx(score.value, abs=1e-12)


def test_a_metric_that_does_not_fit_the_task_is_refused_before_the_model_runs(tmp_path: Path) -> None:
    text = TASK.replace("output_type: generate_until", "output_type: loglikelihood")
    with pytest.raises(HarnessError, match="metric 'bleu' does not fit task 'metric_list_check'"):
        harness.evaluate("mock:0", [str(_task(tmp_path, text))], store=tmp_path / "store", use_cache=False)
    assert not (tmp_path / "store").exists()
