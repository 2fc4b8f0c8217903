"""Golden tests: our metrics against lm-eval 0.4.13's own code on the same per-sample inputs.

lm-eval's per-document side is run through the real `ConfigurableTask.process_results` (on a task
object built without a dataset), and the corpus side through lm-eval's registered aggregations.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from lm_eval.api import metrics as lm_metrics
from lm_eval.api import registry as lm_registry
from lm_eval.api.task import ConfigurableTask, TaskConfig

from harness.metrics import SampleOutcome, default_metrics, get_metric, score, statistics_matrix

SEEDS = [0, 1, 2, 3]
REL = 1e-12

# Pieces that stress whitespace splitting, code points vs UTF-8 bytes, and case folding.
PIECES = ["the", "Cat", "naïve", "日本語", "😀", "Ελληνικά", "İstanbul", "straße", "a.b", "42", "!?"]
SPACES = [" ", "  ", "\t", "\n", "\u3000", "\xa0", "\r\n"]


def _text(rng: random.Random) -> str:
    words = [rng.choice(PIECES) for _ in range(rng.randint(0, 6))]
    text = "".join(word + rng.choice(SPACES) for word in words)
    if rng.random() < 0.5:
        text = text.rstrip()
    if rng.random() < 0.3:
        text = rng.choice(SPACES) + text
    return text


def _lm_task(
    output_type: str, metric_kwargs: dict[str, dict[str, Any]], multiple_target: bool = False
) -> Any:
    """A ConfigurableTask with just what process_results reads: no dataset, no download."""
    task = object.__new__(ConfigurableTask)
    task._config = TaskConfig(
        task="golden",
        output_type=output_type,
        doc_to_choice=(lambda doc: doc["choices"]) if output_type == "multiple_choice" else None,
        doc_to_target=lambda doc: doc["target"],
    )
    task.OUTPUT_TYPE = output_type
    task.prompt = None
    task.features = []
    task.multiple_input = 0
    task.multiple_target = int(multiple_target)
    task._metric_fn_list = {name: lm_registry.get_metric(name) for name in metric_kwargs}
    task._metric_fn_kwargs = metric_kwargs
    task._aggregation_list = {}
    task._higher_is_better = {}
    return task


def _ours(name: str, outcomes: list[SampleOutcome], **settings: Any) -> tuple[float, float | None]:
    metric = get_metric(name, **settings)
    result = score(metric, statistics_matrix(metric, outcomes), bootstrap_resamples=0)
    return result.value, result.stderr


@pytest.mark.parametrize("seed", SEEDS)
def test_loglikelihood_perplexity_and_acc(seed: int) -> None:
    rng = random.Random(seed)
    docs = [(-rng.uniform(0.0, 12.0), rng.random() < 0.4) for _ in range(rng.randint(2, 60))]
    task = _lm_task("loglikelihood", {"perplexity": {}, "acc": {}})
    per_doc = [task.process_results({"target": ""}, [doc]) for doc in docs]
    outcomes = [SampleOutcome("loglikelihood", logprob=ll, is_greedy=greedy) for ll, greedy in docs]

    value, _ = _ours("perplexity", outcomes)
    assert value == pytest.approx(lm_metrics.perplexity([d["perplexity"] for d in per_doc]), rel=REL)
    accs = [d["acc"] for d in per_doc]
    value, stderr = _ours("acc", outcomes)
    assert value == pytest.approx(lm_metrics.mean(accs), rel=REL)
    assert stderr == pytest.approx(lm_metrics.mean_stderr(accs), rel=REL)


def _choice(rng: random.Random) -> str:
    # Few distinct lengths (including non-ASCII) so normalised scores tie often.
    return rng.choice(["A", "é", "日", "ab", "ñö", "😀x", "abc", "Ελλ", "yes", "no"])


@pytest.mark.parametrize("seed", SEEDS)
def test_multiple_choice_acc_and_acc_norm(seed: int) -> None:
    rng = random.Random(seed)
    task = _lm_task("multiple_choice", {"acc": {}, "acc_norm": {}})
    per_doc, outcomes = [], []
    for _ in range(rng.randint(2, 80)):
        choices = [_choice(rng) for _ in range(rng.randint(2, 5))]
        # A coarse grid of logprobs makes raw ties (and ties after length division) common.
        lls = [-float(rng.randint(1, 6)) for _ in choices]
        gold = rng.randrange(len(choices) + 1)  # sometimes out of range: lm-eval scores 0
        doc = {"choices": choices, "target": gold}
        per_doc.append(task.process_results(doc, [(ll, False) for ll in lls]))
        outcomes.append(
            SampleOutcome("multiple_choice", gold=gold, choices=tuple(choices), choice_logprobs=tuple(lls))
        )
    for name in ("acc", "acc_norm"):
        expected = [d[name] for d in per_doc]
        metric = get_metric(name)
        assert [metric.sample_statistics(o)[0] for o in outcomes] == expected
        value, stderr = _ours(name, outcomes)
        assert value == pytest.approx(lm_metrics.mean(expected), rel=REL)
        assert stderr == pytest.approx(lm_metrics.mean_stderr(expected), rel=REL, abs=1e-15)


def test_acc_norm_uses_characters_without_delimiter() -> None:
    # Scored continuations are " ab" / " abcd", but lm-eval divides by len("ab")=2, len("abcd")=4:
    # -2.2/2 = -1.1 < -4.0/4 = -1.0, so the longer choice wins; with the delimiter it would not.
    outcome = SampleOutcome("multiple_choice", gold=1, choices=("ab", "abcd"), choice_logprobs=(-2.2, -4.0))
    assert get_metric("acc_norm").sample_statistics(outcome)[0] == 1.0
    task = _lm_task("multiple_choice", {"acc_norm": {}})
    assert task.process_results({"choices": ["ab", "abcd"], "target": 1}, [(-2.2, 0), (-4.0, 0)]) == {
        "acc_norm": 1.0
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_rolling_perplexities(seed: int) -> None:
    rng = random.Random(seed)
    names = ["word_perplexity", "byte_perplexity", "bits_per_byte"]
    task = _lm_task("loglikelihood_rolling", {name: {} for name in names})
    texts = [_text(rng) or "x" for _ in range(rng.randint(2, 40))]
    lls = [-rng.uniform(1.0, 300.0) for _ in texts]
    tokens = [rng.randint(1, 200) for _ in texts]
    per_doc = [task.process_results({"target": t}, (ll,)) for t, ll in zip(texts, lls, strict=True)]
    outcomes = [
        SampleOutcome("loglikelihood_rolling", target=t, logprob=ll, num_tokens=k)
        for t, ll, k in zip(texts, lls, tokens, strict=True)
    ]
    aggregations = {
        "word_perplexity": lm_metrics.weighted_perplexity,
        "byte_perplexity": lm_metrics.weighted_perplexity,
        "bits_per_byte": lm_metrics.bits_per_byte,
    }
    for name in names:
        metric = get_metric(name)
        assert [metric.sample_statistics(o) for o in outcomes] == [
            tuple(map(float, d[name])) for d in per_doc
        ]
        assert _ours(name, outcomes)[0] == pytest.approx(
            aggregations[name]([d[name] for d in per_doc]), rel=REL
        )
    # token_perplexity is ours, but it is the same weighted perplexity over token counts.
    expected = lm_metrics.weighted_perplexity(list(zip(lls, tokens, strict=True)))
    assert _ours("token_perplexity", outcomes)[0] == pytest.approx(expected, rel=REL)


def test_word_count_quirks_match_lm_eval() -> None:
    task = _lm_task("loglikelihood_rolling", {"word_perplexity": {}})
    metric = get_metric("word_perplexity")
    for text in ["", " ", "a", " a ", "a\u3000b", "a\xa0b\n", "\n\na  b\t"]:
        outcome = SampleOutcome("loglikelihood_rolling", target=text, logprob=-1.0)
        words = task.process_results({"target": text}, (-1.0,))["word_perplexity"][1]
        assert metric.sample_statistics(outcome)[1] == words


EM_SETTINGS: list[dict[str, Any]] = [
    {},
    {"ignore_case": True},
    {"ignore_punctuation": True},
    {"ignore_numbers": True},
    {"ignore_case": True, "ignore_punctuation": True, "ignore_numbers": True},
    {"regexes_to_ignore": [","]},
    {"regexes_to_ignore": ["^\\s+", "\\s+$", "[0-9]"], "ignore_case": True},
    {"regexes_to_ignore": ["x\x00*"], "ignore_case": True, "ignore_punctuation": True},
]
# A tiny alphabet so matches are frequent; İ grows when lowercased and NUL is special to numpy.
EM_ALPHABET = ["a", "A", "b", ".", ",", "1", " ", "İ", "ß", "\x00", "x", "Σ"]


def _em_string(rng: random.Random) -> str:
    return "".join(rng.choice(EM_ALPHABET) for _ in range(rng.randint(0, 3)))


@pytest.mark.parametrize("settings", EM_SETTINGS, ids=lambda s: repr(s))
@pytest.mark.parametrize("multiple_target", [False, True])
def test_exact_match(settings: dict[str, Any], multiple_target: bool) -> None:
    rng = random.Random(repr(settings) + str(multiple_target))
    task = _lm_task("generate_until", {"exact_match": dict(settings)}, multiple_target=multiple_target)
    metric = get_metric("exact_match", **settings)
    expected, outcomes = [], []
    for _ in range(400):
        prediction = _em_string(rng)
        if multiple_target:
            references = tuple(_em_string(rng) for _ in range(rng.randint(1, 3)))
            outcome = SampleOutcome("generate_until", references=references, prediction=prediction)
            target: Any = list(references)
        else:
            target = _em_string(rng)
            outcome = SampleOutcome("generate_until", target=target, prediction=prediction)
        expected.append(float(task.process_results({"target": target}, [prediction])["exact_match"]))
        outcomes.append(outcome)
    assert [metric.sample_statistics(o)[0] for o in outcomes] == expected
    assert 0.0 < sum(expected) < len(expected)  # both outcomes exercised
    value, stderr = _ours("exact_match", outcomes, **settings)
    assert value == pytest.approx(lm_metrics.mean(expected), rel=REL)
    assert stderr == pytest.approx(lm_metrics.mean_stderr(expected), rel=REL)


@pytest.mark.parametrize(
    ("prediction", "target", "settings"),
    [
        ("a\x00", "a", {}),  # numpy drops trailing NULs: lm-eval counts this as a match
        ("İx", "i̇x", {"ignore_case": True}),  # lowercasing grows; numpy truncates to width 2
        ("İx", "İx", {"ignore_case": True}),
        ("Hello, World!", "hello world", {"ignore_case": True, "ignore_punctuation": True}),
        ("１２3", "１２", {"ignore_numbers": True}),  # only ASCII digits are removed
        ("The answer is 42", "42", {"regexes_to_ignore": ["^The answer is "]}),
    ],
)
def test_exact_match_edge_cases(prediction: str, target: str, settings: dict[str, Any]) -> None:
    expected = lm_metrics.exact_match_hf_evaluate(predictions=[prediction], references=[target], **settings)[
        "exact_match"
    ]
    outcome = SampleOutcome("generate_until", target=target, prediction=prediction)
    assert get_metric("exact_match", **settings).sample_statistics(outcome)[0] == expected


def test_exact_match_prefers_references_over_target() -> None:
    metric = get_metric("exact_match")
    outcome = SampleOutcome("generate_until", target="no", references=("x", "yes"), prediction="yes")
    assert metric.sample_statistics(outcome)[0] == 1.0


def test_defaults_and_directions_match_lm_eval() -> None:
    for output_type, names in lm_registry.DEFAULT_METRIC_REGISTRY.items():
        ours = default_metrics(output_type)
        assert ours[: len(names)] == names
        for name in ours:
            metric = get_metric(name)
            assert output_type in metric.output_types
            if name != "token_perplexity":
                assert metric.higher_is_better == lm_registry.is_higher_better(name)
    assert default_metrics("loglikelihood_rolling")[-1] == "token_perplexity"


def test_statistics_are_additive_floats() -> None:
    outcomes = [SampleOutcome("loglikelihood", logprob=-1.5, is_greedy=True)] * 3
    stats = statistics_matrix(get_metric("perplexity"), outcomes)
    assert stats.dtype == np.float64 and stats.shape == (3, 2)
    assert statistics_matrix(get_metric("acc"), []).shape == (0, 2)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("lls", [(-1.0, -3.0, -2.0), (-1.0, 0.0, -2.0), (-5.0, -3.0, -9.0)])
def test_acc_norm_empty_choice_follows_numpy(lls: tuple[float, ...]) -> None:
    # An empty choice divides by zero: -x/0 = -inf loses, 0/0 = NaN wins argmax, as in lm-eval.
    choices = ["ab", "", "abcd"]
    task = _lm_task("multiple_choice", {"acc_norm": {}})
    for gold in range(3):
        expected = task.process_results({"choices": choices, "target": gold}, [(ll, 0) for ll in lls])
        outcome = SampleOutcome("multiple_choice", gold=gold, choices=tuple(choices), choice_logprobs=lls)
        assert get_metric("acc_norm").sample_statistics(outcome)[0] == expected["acc_norm"]
