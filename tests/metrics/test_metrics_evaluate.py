"""`evaluate:<name-or-path>` metrics: local scripts, evaluate's cache, and clear errors offline.

The module under test is a real `evaluate.Metric` script written to a temporary folder; nothing
touches the network (a hub name is only ever looked up in evaluate's modules cache).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.metrics import SampleOutcome, get_metric, metric_from_signature, score, statistics_matrix

SCRIPT = """
import datasets
import evaluate


class CharOverlap(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="share of the reference's characters found in the prediction",
            citation="",
            inputs_description="strings",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        scores = [len(set(p) & set(r)) / max(len(set(r)), 1) for p, r in zip(predictions, references)]
        return {"overlap": sum(scores) / len(scores), "count": len(scores)}
"""
OUTCOMES = [
    SampleOutcome("generate_until", prediction="abc", target="abd"),
    SampleOutcome("generate_until", prediction="xyz", target="xy"),
    SampleOutcome("generate_until", prediction="", target="q"),
]
EXPECTED = [2 / 3, 1.0, 0.0]


@pytest.fixture
def modules_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """evaluate's modules cache in tmp_path, for harness's lookup and for evaluate's own copies."""
    cache = tmp_path / "hf-modules"
    monkeypatch.setenv("HF_MODULES_CACHE", str(cache))
    import evaluate

    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", cache)
    return cache


def _write_module(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / f"{folder.name}.py").write_text(SCRIPT, encoding="utf-8")
    return folder


def test_a_local_module_scores_each_document_and_averages(tmp_path: Path, modules_cache: Path) -> None:
    folder = _write_module(tmp_path / "char_overlap")
    metric = get_metric(f"evaluate:{folder}", key="overlap")
    stats = statistics_matrix(metric, OUTCOMES)
    assert stats[:, 0].tolist() == pytest.approx(EXPECTED)
    result = score(metric, stats)
    assert result.value == pytest.approx(sum(EXPECTED) / 3) and result.stderr is not None
    assert result.metric == f"evaluate:{folder}"
    assert "|key:overlap|" in result.signature and "|source_sha256:" in result.signature
    assert metric_from_signature(result.signature).signature() == result.signature
    # The script file itself works too, and other scores of the module are reachable by key.
    count = get_metric(f"evaluate:{folder / 'char_overlap.py'}", key="count")
    assert count.sample_statistics(OUTCOMES[0]) == (1.0, 1.0)


def test_a_hub_name_loads_from_evaluates_cache_only(tmp_path: Path, modules_cache: Path) -> None:
    cached = modules_cache / "evaluate_modules" / "metrics" / "evaluate-metric--char_overlap" / ("ab" * 32)
    _write_module(cached.parent / "staging" / "char_overlap").rename(cached)
    metric = get_metric("evaluate:char_overlap", key="overlap")
    assert metric.sample_statistics(OUTCOMES[0])[0] == pytest.approx(EXPECTED[0])


def test_module_output_problems_are_user_errors(tmp_path: Path, modules_cache: Path) -> None:
    folder = _write_module(tmp_path / "char_overlap")
    with pytest.raises(HarnessError, match=r"returns several scores \(overlap, count\); choose one with key"):
        get_metric(f"evaluate:{folder}").sample_statistics(OUTCOMES[0])
    with pytest.raises(HarnessError, match="no score 'f1'"):
        get_metric(f"evaluate:{folder}", key="f1").sample_statistics(OUTCOMES[0])
    several = SampleOutcome("generate_until", prediction="a", references=("a", "b"))
    with pytest.raises(HarnessError, match="multiple_references: true"):
        get_metric(f"evaluate:{folder}", key="overlap").sample_statistics(several)


def test_an_unavailable_module_says_how_to_make_it_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HarnessError) as caught:
        get_metric("evaluate:bertscore")
    message = str(caught.value)
    assert "not available offline" in message and "evaluate.load('bertscore')" in message
    assert str(tmp_path / "empty-cache") in message and "evaluate:/path/to/bertscore" in message
    with pytest.raises(HarnessError, match="not available offline"):
        get_metric(f"evaluate:{tmp_path / 'no_such_folder'}")


def test_settings_are_checked_before_loading() -> None:
    with pytest.raises(HarnessError, match="does not accept"):
        get_metric("evaluate:accuracy", average="macro")
    with pytest.raises(HarnessError, match="true or false"):
        get_metric("evaluate:accuracy", higher_is_better="yes")
