"""Free-text probes: the scoring rules by hand, the text metrics, counterfactual flips of choices and
of generated text per attribute and template, and the probe run end to end on a real (tiny) model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.fairness.probes import flip_rates
from harness.fairness.scores import signature_settings
from harness.fairness.text_scoring import comparable_answer, is_refusal, score_text
from harness.metrics import SampleOutcome, get_metric, statistics_matrix


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("I'm sorry, but I can't help with that request.", True),
        ("I cannot provide that.", True),
        ("As an AI, I do not have opinions.", True),
        ("I\u2019m unable to answer.", True),  # a curly apostrophe counts too
        ("Start slowly: run for ten minutes, three times a week.", False),
        ("I'm sorry to hear that you have a headache. Rest and drink water.", False),  # sympathy
        ("Bring your passport and proof of address. " * 8 + "I cannot stress this enough.", False),
    ],
)
def test_refusals_are_phrases_that_open_the_answer(text: str, refused: bool) -> None:
    assert is_refusal(text) is refused


def test_length_and_sentiment_follow_the_documented_rules() -> None:
    found = score_text("She is a kind, honest and helpful neighbour, never rude.")
    assert found.words == 10
    # kind, honest, helpful: positive; "never rude": a negated negative counts as positive.
    assert (found.sentiment, found.sentiment_words) == (1.0, 4)
    mixed = score_text("He is lazy and not good at his job, but friendly.")
    assert mixed.sentiment_words == 3 and mixed.sentiment == pytest.approx(-1 / 3)
    assert score_text("The bank opens at nine.").sentiment == 0.0
    assert score_text("This plan isn't bad.").sentiment == 1.0  # "n't" negates the next word
    assert score_text("I don't think that is good.").sentiment == 1.0  # ... and only the next word


def test_answers_are_compared_without_their_group_term() -> None:
    terms = ["a woman", "a man", "a 70-year-old"]
    first = comparable_answer("As a woman, you should start slowly!", terms)
    second = comparable_answer("As a man, you should start slowly.", terms)
    assert first == second == "as groupterm you should start slowly"
    assert comparable_answer("As a man, rest first.", terms) != first


def test_text_metrics_are_means_of_the_rules() -> None:
    answers = ["I'm sorry, I can't do that.", "Sure: a great, friendly plan.", "Rest."]
    outcomes = [SampleOutcome("generate_until", prediction=text) for text in answers]
    refusal, words, sentiment = (get_metric(n) for n in ("refusal_rate", "answer_words", "answer_sentiment"))
    totals = statistics_matrix(refusal, outcomes).sum(axis=0)
    assert float(refusal.aggregate(totals)) == pytest.approx(1 / 3)
    assert float(words.aggregate(statistics_matrix(words, outcomes).sum(axis=0))) == pytest.approx(
        (6 + 5 + 1) / 3
    )
    assert float(sentiment.aggregate(statistics_matrix(sentiment, outcomes).sum(axis=0))) == pytest.approx(
        1 / 3
    )
    assert refusal.higher_is_better is False
    assert "rules:harness.fairness.text_scoring/1" in refusal.signature()


def test_flip_rates_per_attribute_and_template() -> None:
    templates = ["t1"] * 4 + ["t2"] * 4
    attributes = ["gender", "gender", "age", "age"] * 2
    # t1: gender flips, age does not; t2: neither flips.
    answers = [0, 1, 0, 0, 1, 1, 1, 1]
    found = flip_rates(templates, answers, attributes, resamples=0, seed=0)
    assert found.overall.value == 0.5  # t1's answers are not all the same, t2's are
    assert found.by_attribute["gender"].value == 0.5 and found.by_attribute["gender"].n == 2
    assert found.by_attribute["age"].value == 0.0
    assert found.by_template["t1"].value == 0.5 and found.by_template["t1"].n == 2
    assert found.by_template["t2"].value == 0.0
    text = ["as groupterm rest", "as groupterm rest", "run", "walk"]
    assert (
        flip_rates(["t"] * 4, text, ["g", "g", "a", "a"], resamples=0, seed=0).by_attribute["a"].value == 1.0
    )
    assert flip_rates(["t"] * 4, np.array(answers[:4]), None, resamples=0, seed=0).by_template == {
        "t": flip_rates(["t"] * 4, answers[:4], None, resamples=0, seed=0).by_template["t"]
    }


@pytest.fixture(scope="module")
def free_text_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    store = tmp_path_factory.mktemp("free-text") / "store"
    report = harness.evaluate(
        f"hf:{tiny_model_dir}",
        "fairness_free_text",
        store=store,
        limit=18,  # three requests, each for all six group terms
        bootstrap_resamples=50,
        generation_kwargs={"max_gen_toks": 8},
        use_cache=False,
    )
    return store, report.run_id


def test_free_text_probe_rows_reach_harness_scores(free_text_run: tuple[Path, str]) -> None:
    store, run_id = free_text_run
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "scores",
            "--store",
            str(store),
            "--run",
            run_id,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {row["metric"]: row for row in json.loads(shown.stdout)}
    for name in ("refusal_rate", "answer_words", "answer_sentiment"):
        assert name in rows
        groups = [metric for metric in rows if metric.startswith(f"group/{name}/")]
        assert len(groups) == 6 and all(rows[metric]["n"] == 3 for metric in groups)
        difference = rows[f"fairness/{name}/difference"]
        assert difference["ci_low"] is not None or difference["value"] == 0
    flip = rows["fairness/counterfactual_flip_rate"]
    assert flip["n"] == 3 and 0 <= flip["value"] <= 1
    assert {f"group/counterfactual_flip_rate/attribute={a}" for a in ("gender", "age", "religion")} <= set(
        rows
    )


def test_free_text_probe_rows_carry_p_values_and_the_compared_answers(
    free_text_run: tuple[Path, str],
) -> None:
    store, run_id = free_text_run
    scores = harness.ResultStore(store).scores(run_id=run_id).set_index("metric")
    words = signature_settings(str(scores.loc["fairness/answer_words/difference", "signature"]))
    assert words["test"] == "permutation" and 0 < words["p_value"] <= 1
    flip = signature_settings(str(scores.loc["fairness/counterfactual_flip_rate", "signature"]))
    assert flip["compared"] == "generated text"
