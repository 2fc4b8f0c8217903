"""`harness score --predictions FILE`: formats, stored runs, numbers, and bad input.

Most tests call `harness.cli.main` in-process (fast); one runs the real console entry point. Bad input
must give exit code 2, one line on stderr, and leave the store exactly as it was.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from harness.cli import main
from harness.metrics import metric_from_signature

ROWS: list[dict[str, Any]] = [
    {"prediction": "The cat sat on the mat.", "reference": ["The cat is on the mat.", "A cat sat on a mat."]},
    {"prediction": "Paris is the capital of France", "reference": "The capital of France is Paris."},
    {"prediction": "", "reference": "Nothing was generated here."},
    {"prediction": "naïve café 日本語 😀", "reference": ["naive cafe 日本語", "naïve café"]},
    {"prediction": "Two plus two is four.", "reference": "Two plus two equals four."},
]
LABELLED: list[dict[str, Any]] = [
    {"text": p, "gold": g, "lang": lang}
    for p, g, lang in [
        ("positive", "positive", "en"),
        ("negative", "positive", "en"),
        ("neutral", "neutral", "fr"),
        ("negative", "negative", "fr"),
        ("positive", "neutral", "de"),
        ("unsure", "negative", "de"),
    ]
]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _reference_streams(references: list[list[str]]) -> list[list[str]]:
    """sacrebleu's reference streams, None where a document has fewer references than the most."""
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(2)]
    # sacrebleu documents None as a missing reference (`_cache_references`), though it annotates str only.
    return streams  # type: ignore[return-value]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generation_metrics_match_the_libraries_and_are_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_jsonl(
        tmp_path / "outputs.jsonl", [{**row, "lang": str(i % 2)} for i, row in enumerate(ROWS)]
    )
    store = tmp_path / "store"
    code, out, err = _run(
        capsys,
        "score", "--predictions", str(data), "--metrics", "bleu,chrf,rouge,token_f1,exact_match",
        "--model", "my-model", "--store", str(store), "--group-field", "lang", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    every_row = {row["metric"]: row for row in json.loads(out)}
    # The group field adds per-group and gap rows after the corpus metrics.
    assert {"group/bleu/0", "group/bleu/1", "fairness/bleu/difference"} <= set(every_row)
    scores = {m: row for m, row in every_row.items() if not m.startswith(("group/", "fairness/"))}
    assert list(scores) == [
        "bleu",
        "chrf",
        "rouge1",
        "rouge2",
        "rougeL",
        "rougeLsum",
        "token_f1",
        "exact_match",
    ]
    predictions = [row["prediction"] for row in ROWS]
    references = [r if isinstance(r, list) else [r] for r in (row["reference"] for row in ROWS)]
    streams = _reference_streams(references)
    assert scores["bleu"]["value"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, streams).score, abs=1e-9
    )
    assert scores["chrf"]["value"] == pytest.approx(
        sacrebleu.corpus_chrf(predictions, streams).score, abs=1e-9
    )
    rouge = rouge_scorer.RougeScorer(["rougeL"])
    expected_rouge = np.mean(
        [rouge.score_multi(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]
    )
    assert scores["rougeL"]["value"] == pytest.approx(expected_rouge, abs=1e-9)
    for row in scores.values():
        assert row["model"] == "my-model" and row["task"] == "outputs" and row["n"] == 5
        assert row["ci_low"] <= row["value"] <= row["ci_high"], row
    # No prediction equals one of its references: 0 of 5, whose 95% Wilson interval is [0, 0.4345].
    wilson = binomtest(0, 5).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = max(wilson.low, 0.0), wilson.high
    assert [scores["exact_match"][key] for key in ("value", "ci_low")] == [0.0, low]
    assert scores["exact_match"]["ci_high"] == pytest.approx(high, abs=1e-12)

    runs = pd.read_parquet(store / "runs")
    assert runs["model"].tolist() == ["my-model"] and runs["tasks"][0].tolist() == ["outputs"]
    provenance = json.loads(runs["provenance"][0])
    assert provenance["source"] == "harness score" and provenance["cost"]["outputs"]["samples"] == 5
    samples = pd.read_parquet(store / "samples").sort_values("doc_id")
    assert samples["group"].tolist() == ["0", "1", "0", "1", "0"]
    assert json.loads(samples["metadata"].iloc[0]) == {"references": references[0]}
    # Stored per-document statistics re-aggregate, through the stored signature, to the stored value.
    stored = pd.read_parquet(store / "scores").set_index("metric")
    for name in ("bleu", "chrf", "rougeLsum", "token_f1"):
        metric = metric_from_signature(stored.loc[name, "signature"])
        rows = [json.loads(text) for text in samples["statistics"]]
        keys = [name] if len(metric.statistic_names) == 1 else [f"{name}/{s}" for s in metric.statistic_names]
        totals = np.sum([[row[key] for key in keys] for row in rows], axis=0)
        assert float(metric.aggregate(totals)) == pytest.approx(stored.loc[name, "value"], abs=1e-12)
    assert "5 predictions, 8 metrics" in err


def test_classification_from_csv_with_per_class_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "labels.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "gold", "lang"])
        writer.writeheader()
        writer.writerows(LABELLED)
    store = tmp_path / "store"
    common = ["score", "--predictions", str(data), "--prediction-field", "text", "--label-field", "gold"]
    code, out, err = _run(capsys, *common, "--metrics", "f1_macro,f1_weighted,acc", "--store", str(store))
    assert code == 0, err
    assert "per class:" in out and "unsure" in out and "f1[" not in out.split("per class:")[0]
    gold = [row["gold"] for row in LABELLED]
    predicted = [row["text"] for row in LABELLED]
    stored = pd.read_parquet(store / "scores").set_index("metric")["value"]
    assert stored["f1_macro"] == pytest.approx(f1_score(gold, predicted, average="macro"), abs=1e-12)
    assert stored["f1_weighted"] == pytest.approx(f1_score(gold, predicted, average="weighted"), abs=1e-12)
    assert stored["acc"] == pytest.approx(3 / 6)
    per_class = f1_score(gold, predicted, average=None, labels=sorted(set(gold) | set(predicted)))
    for label, value in zip(sorted(set(gold) | set(predicted)), per_class, strict=True):
        assert stored[f"f1[{label}]"] == pytest.approx(value, abs=1e-12)
    # Every stored row, per-class ones included, re-aggregates from the stored statistics of the
    # metric its signature rebuilds (what `harness compare` relies on to pair runs).
    scores = pd.read_parquet(store / "scores")
    rows = [json.loads(text) for text in pd.read_parquet(store / "samples")["statistics"]]
    for signature, value in zip(scores["signature"], scores["value"], strict=True):
        metric = metric_from_signature(signature)
        keys = (
            [metric.name]
            if len(metric.statistic_names) == 1
            else [f"{metric.name}/{s}" for s in metric.statistic_names]
        )
        totals = np.sum([[row[key] for key in keys] for row in rows], axis=0)
        assert float(metric.aggregate(totals)) == pytest.approx(value, abs=1e-12)
    # Binary F1 needs a positive label among at most two; the error says what to do instead.
    code, _, err = _run(capsys, *common, "--metrics", "f1", "--store", str(store))
    assert code == 2 and "use f1_macro, f1_micro or f1_weighted" in err


def test_parquet_and_separate_reference_files_give_the_same_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = ["--metrics", "bleu,rougeL", "--bootstrap-resamples", "50", "--format", "json"]
    references = [
        row["reference"] if isinstance(row["reference"], list) else [row["reference"]] for row in ROWS
    ]
    table = pa.table({"prediction": [row["prediction"] for row in ROWS], "reference": references})
    pq.write_table(table, tmp_path / "outputs.parquet")
    parquet = ["--predictions", str(tmp_path / "outputs.parquet"), "--store", str(tmp_path / "a")]
    code, parquet_out, err = _run(capsys, "score", *parquet, *metrics)
    assert code == 0, err
    # sacrebleu style: a text file of hypotheses and one per reference stream. A repeated reference
    # changes neither BLEU nor best-of ROUGE, so documents with one reference repeat it.
    (tmp_path / "hyp.txt").write_text("\n".join(row["prediction"] for row in ROWS) + "\n", encoding="utf-8")
    for slot in (0, 1):
        lines = [refs[min(slot, len(refs) - 1)] for refs in references]
        (tmp_path / f"ref{slot}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = ["--predictions", str(tmp_path / "hyp.txt"), "--store", str(tmp_path / "b")]
    text += ["--references", str(tmp_path / "ref0.txt"), "--references", str(tmp_path / "ref1.txt")]
    code, text_out, err = _run(capsys, "score", *text, *metrics)
    assert code == 0, err
    parquet_scores = {row["metric"]: row["value"] for row in json.loads(parquet_out)}
    text_scores = {row["metric"]: row["value"] for row in json.loads(text_out)}
    assert text_scores == pytest.approx(parquet_scores, abs=1e-12)
    streams = _reference_streams(references)
    predictions = [row["prediction"] for row in ROWS]
    assert parquet_scores["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, streams).score, abs=1e-9
    )


BAD_INPUTS: list[tuple[str, str, list[str], str]] = [
    ("empty.jsonl", "", [], "has no rows"),
    ("rows.jsonl", '{"prediction": "a"}\n', [], "no field 'reference'"),
    ("rows.jsonl", '{"prediction": 5, "reference": "a"}\n', [], "field 'prediction' must be text, got int 5"),
    ("rows.jsonl", '{"prediction": null, "reference": "a"}\n', [], "must be text, got null"),
    ("rows.jsonl", '{"prediction": "a", "reference": ["a", 3]}\n', [], "field 'reference' must be text"),
    ("rows.jsonl", '{"prediction": "a", "reference": "a"}\nnot json\n', [], "line 2: not valid JSON"),
    ("rows.jsonl", '{"prediction": "a", "reference": "a"}\n', ["--metrics", "blue"], "did you mean 'bleu'"),
    ("rows.jsonl", '{"prediction": "a", "reference": "a"}\n', ["--metrics", "perplexity"], "does not fit"),
    (
        "rows.jsonl",
        '{"prediction": "a", "reference": "a"}\n',
        ["--metric-args", "bleu.tokenize=nope"],
        "unknown tokenize",
    ),
    (
        "rows.jsonl",
        '{"prediction": "a", "reference": "a"}\n',
        ["--metric-args", "rouge1.measure=f"],
        "not in --metrics",
    ),
    ("rows.jsonl", '{"prediction": "a", "reference": []}\n', [], "empty list of references"),
    ("rows.jsonl", '{"prediction": "a", "reference": ["a", "b"]}\n', ["--metrics", "acc"], "one gold label"),
    ("rows.jsonl", '{"prediction": "a", "reference": "a"}\n', ["--label-field", "y"], "no field 'y'"),
    ("rows.xlsx", "x", [], "unsupported file type"),
    ("rows.json", '{"prediction": "a"}', [], "expected a JSON list"),
    ("rows.csv", "prediction\na\n", [], "no field 'reference'"),
]


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("filled")
    good = _write_jsonl(folder / "good.jsonl", ROWS)
    assert (
        main(["score", "--predictions", str(good), "--metrics", "bleu", "--store", str(folder / "store")])
        == 0
    )
    return folder / "store"


@pytest.mark.parametrize(("name", "content", "extra", "message"), BAD_INPUTS, ids=[b[3] for b in BAD_INPUTS])
@pytest.mark.parametrize("store_exists", [False, True])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    filled_store: Path,
    name: str,
    content: str,
    extra: list[str],
    message: str,
    store_exists: bool,
) -> None:
    store = tmp_path / "store"
    if store_exists:
        shutil.copytree(filled_store, store)
    before = _snapshot(store) if store_exists else None
    (tmp_path / name).write_text(content, encoding="utf-8")
    metrics = [] if "--metrics" in extra else ["--metrics", "bleu,chrf"]
    capsys.readouterr()
    code, _, err = _run(
        capsys, "score", "--predictions", str(tmp_path / name), *metrics, *extra, "--store", str(store)
    )
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert (_snapshot(store) == before) if store_exists else not store.exists()


def test_prediction_and_reference_count_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hyp.txt").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("a\nb\n", encoding="utf-8")
    args = ["--predictions", str(tmp_path / "hyp.txt"), "--references", str(tmp_path / "ref.txt")]
    code, _, err = _run(capsys, "score", *args, "--metrics", "bleu", "--store", str(tmp_path / "store"))
    assert code == 2 and "has 3 predictions but" in err and "has 2 references" in err
    assert not (tmp_path / "store").exists()


def test_the_console_command_end_to_end(tmp_path: Path) -> None:
    # The real entry point: exit status 2 and a single stderr line, not a traceback.
    data = _write_jsonl(tmp_path / "outputs.jsonl", ROWS)
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "score",
        "--predictions",
        str(data),
        "--metrics",
        "bleu,nope",
    ]
    bad = subprocess.run(
        [*command, "--store", str(tmp_path / "s")], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and bad.stderr.startswith("harness: error: unknown metric 'nope' (known: acc,")
    assert bad.stderr.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_group_field_adds_fairness_rows_equal_to_fairlearn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fairlearn.metrics import demographic_parity_difference

    rng = np.random.default_rng(5)
    groups = rng.choice(["a", "b", "c"], size=90)
    labels = rng.integers(0, 2, size=90)
    predictions = np.where(rng.random(90) < 0.8, labels, 1 - labels)
    path = _write_jsonl(
        tmp_path / "classified.jsonl",
        [
            {"prediction": str(p), "label": str(y), "who": str(g)}
            for p, y, g in zip(predictions, labels, groups, strict=True)
        ],
    )
    code, out, err = _run(
        capsys,
        "score",
        "--predictions",
        str(path),
        "--metrics",
        "f1",
        "--label-field",
        "label",
        "--group-field",
        "who",
        "--store",
        str(tmp_path / "store"),
        "--format",
        "json",
    )
    assert code == 0, err
    rows = {row["metric"]: row for row in json.loads(out)}
    assert {"group/f1/a", "group/f1/b", "group/f1/c"} <= set(rows)
    expected = demographic_parity_difference(labels, predictions, sensitive_features=groups)
    assert rows["fairness/demographic_parity_difference"]["value"] == pytest.approx(expected, abs=1e-12)


def test_python_score_does_what_the_command_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import harness

    assert "score" in harness.__all__ and "ScoreReport" in harness.__all__
    data = _write_jsonl(tmp_path / "outputs.jsonl", ROWS)
    code, out, err = _run(
        capsys,
        "score", "--predictions", str(data), "--metrics", "bleu,chrf", "--metric-args", "bleu.tokenize=intl",
        "--store", str(tmp_path / "cli"), "--tag", "nightly", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    report = harness.score(
        data,
        ["bleu", "chrf"],
        metric_args={"bleu": {"tokenize": "intl"}},
        store=tmp_path / "api",
        tags=["nightly"],
    )
    assert (report.model, report.task, report.predictions, report.metrics) == ("outputs", "outputs", 5, 2)
    from_cli = {row["metric"]: row["value"] for row in json.loads(out)}
    assert report.to_frame().set_index("metric")["value"].to_dict() == pytest.approx(from_cli, abs=1e-12)
    for root in (tmp_path / "cli", tmp_path / "api"):
        (run,) = harness.ResultStore(root).run_records()
        assert run.tags == ("nightly",) and run.provenance.details["source"] == "harness score"
        assert run.provenance.versions.libraries["sacrebleu"] == sacrebleu.__version__
    assert report.store == tmp_path / "api" and report.run_id == run.run_id
    dry = harness.score(data, "bleu", store=tmp_path / "none", write=False)
    assert dry.store is None and not (tmp_path / "none").exists()
