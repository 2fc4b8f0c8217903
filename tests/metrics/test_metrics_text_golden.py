"""Golden tests: BLEU, chrF, TER, ROUGE and SQuAD token F1 against their reference implementations.

The references are called directly on the same texts: sacrebleu (statistics per document and
corpus scores), rouge-score's `RougeScorer.score_multi`, lm-eval's bleu/chrf/ter aggregations, and
the official SQuAD v2.0 evaluation functions (transcribed below; they are not on the package
index). Inputs mix unicode, empty predictions and references, several (and a varying number of)
references, long texts and every tokeniser that needs no download.
"""

from __future__ import annotations

import collections
import random
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sacrebleu
from lm_eval.api import metrics as lm_metrics
from rouge_score import rouge_scorer

from harness.errors import HarnessError
from harness.metrics import SampleOutcome, get_metric, metric_from_signature, score, statistics_matrix
from harness.metrics._ngrams import _group, clipped_matches, encode_chars
from harness.metrics.rouge import lcs_length

TOLERANCE = 1e-9
BUILTIN_DATA = Path(__file__).resolve().parents[2] / "tasks" / "builtin" / "data"
WORDS = [
    "the", "The", "cat", "sat", "on", "mat", "a", "an", "dog's", "running", "runs", "naïve", "café",
    "日本語", "中文", "😀", "Ελληνικά", "İstanbul", "straße", "Hello,", "world!", "(hi)", "42", "3.14",
    "U.S.A.", "--", "it's", "e-mail", "\u3000", "\n",
]  # fmt: skip


def _sentence(rng: random.Random, longest: int = 30) -> str:
    if rng.random() < 0.08:
        return ""  # empty predictions and references happen
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, longest)))


def _corpus(seed: int, longest: int = 30) -> tuple[list[str], list[list[str]]]:
    """Predictions and, per document, 1-3 references (a varying number within one corpus)."""
    rng = random.Random(seed)
    predictions, references = [], []
    for _ in range(rng.randint(1, 40)):
        refs = [_sentence(rng, longest) for _ in range(rng.randint(1, 3))]
        if refs[0] and rng.random() < 0.5:  # a noisy copy, so higher-order n-grams match too
            words = refs[0].split(" ")
            predictions.append(" ".join(w for w in words if rng.random() < 0.85))
        else:
            predictions.append(_sentence(rng, 2 * longest if rng.random() < 0.1 else longest))
        references.append(refs)
    return predictions, references


def _streams(references: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's reference streams; None marks a document with fewer references."""
    width = max(len(refs) for refs in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def _outcomes(predictions: list[str], references: list[list[str]]) -> list[SampleOutcome]:
    return [
        SampleOutcome("generate_until", prediction=p, references=tuple(r))
        for p, r in zip(predictions, references, strict=True)
    ]


SEEDS = range(6)
BLEU_SETTINGS: list[dict[str, Any]] = [
    {},
    {"tokenize": "intl"},
    {"tokenize": "char"},
    {"tokenize": "zh"},
    {"tokenize": "none", "lowercase": True},
    {"smooth_method": "none"},
    {"smooth_method": "floor", "smooth_value": 0.2},
    {"smooth_method": "add-k", "effective_order": True},
    {"smooth_method": "exp", "effective_order": True, "max_ngram_order": 2},
    {"max_ngram_order": 6},
]
CHRF_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("chrf", {}),
    ("chrf++", {}),
    ("chrf", {"lowercase": True, "whitespace": True}),
    ("chrf", {"eps_smoothing": True}),
    ("chrf++", {"beta": 1, "char_order": 4, "eps_smoothing": True}),
    ("chrf", {"beta": 3, "word_order": 1, "char_order": 0}),
]
TER_SETTINGS: list[dict[str, Any]] = [
    {},
    {"normalized": True, "case_sensitive": True},
    {"no_punct": True, "asian_support": True},
]


def _check_against_sacrebleu(
    name: str, settings: dict[str, Any], reference: Any, seed: int, longest: int = 30
) -> None:
    predictions, references = _corpus(seed, longest)
    metric = get_metric(name, **settings)
    stats = statistics_matrix(metric, _outcomes(predictions, references))
    expected = np.asarray(reference._extract_corpus_statistics(predictions, _streams(references)), float)
    np.testing.assert_array_equal(stats, expected)  # sacrebleu's own sufficient statistics, exactly
    corpus = reference.corpus_score(predictions, _streams(references)).score
    assert float(metric.aggregate(stats.sum(axis=0))) == pytest.approx(corpus, abs=TOLERANCE)
    # The vectorised aggregate over a leading axis equals sacrebleu's scalar rule row by row.
    rows = np.cumsum(stats, axis=0)
    expected_rows = [reference._compute_score_from_stats(list(row)).score for row in rows]
    np.testing.assert_allclose(metric.aggregate(rows), expected_rows, rtol=0, atol=TOLERANCE)
    one = metric.sample_statistics(_outcomes(predictions, references)[0])
    assert one == tuple(stats[0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("settings", BLEU_SETTINGS, ids=repr)
def test_bleu_matches_sacrebleu(settings: dict[str, Any], seed: int) -> None:
    _check_against_sacrebleu("bleu", settings, sacrebleu.BLEU(**settings), seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "settings"), CHRF_SETTINGS, ids=repr)
def test_chrf_matches_sacrebleu(name: str, settings: dict[str, Any], seed: int) -> None:
    reference = sacrebleu.CHRF(**{"word_order": 2 if name == "chrf++" else 0, **settings})
    _check_against_sacrebleu(name, settings, reference, seed)


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("settings", TER_SETTINGS, ids=repr)
def test_ter_matches_sacrebleu(settings: dict[str, Any], seed: int) -> None:
    # TER's shift search is slow in sacrebleu itself; shorter texts keep the test quick.
    _check_against_sacrebleu("ter", settings, sacrebleu.TER(**settings), seed, longest=12)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_lm_eval_aggregations_agree(seed: int) -> None:
    # lm-eval's bleu/chrf/chrf++/ter take (references, prediction) items with equal reference counts.
    rng = random.Random(seed)
    predictions = [_sentence(rng, 12) for _ in range(25)]
    references = [[_sentence(rng, 12), _sentence(rng, 12)] for _ in predictions]
    items = list(zip(references, predictions, strict=True))
    outcomes = _outcomes(predictions, references)
    for name, aggregation in [
        ("bleu", lm_metrics.bleu),
        ("chrf", lm_metrics.chrf),
        ("chrf++", lm_metrics.chrfpp),
        ("ter", lm_metrics.ter),
    ]:
        metric = get_metric(name)
        value = score(metric, statistics_matrix(metric, outcomes), bootstrap_resamples=0).value
        assert value == pytest.approx(aggregation(items), abs=TOLERANCE)


ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_matches_rouge_score(use_stemmer: bool, seed: int) -> None:
    predictions, references = _corpus(seed + 100)
    if seed == 0:  # long texts: LCS over hundreds of tokens, many sentences for Lsum
        rng = random.Random(seed)
        predictions.append("\n".join(_sentence(rng, 60) for _ in range(12)))
        references.append(["\n".join(_sentence(rng, 60) for _ in range(10))])
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=use_stemmer)
    expected = [scorer.score_multi(refs, pred) for pred, refs in zip(predictions, references, strict=True)]
    outcomes = _outcomes(predictions, references)
    for rouge_type in ROUGE_TYPES:
        for measure in ("fmeasure", "precision", "recall"):
            metric = get_metric(rouge_type, use_stemmer=use_stemmer, measure=measure)
            stats = statistics_matrix(metric, outcomes)
            wanted = [getattr(scores[rouge_type], measure) for scores in expected]
            np.testing.assert_allclose(stats[:, 0], wanted, rtol=0, atol=TOLERANCE)
            assert float(metric.aggregate(stats.sum(axis=0))) == pytest.approx(np.mean(wanted), abs=TOLERANCE)


def test_rouge_lcs_length_matches_the_dp_table() -> None:
    rng = random.Random(7)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 80))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 80))]
        expected = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
        assert lcs_length(a, b) == expected == lcs_length(b, a)


@pytest.fixture
def nltk_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An NLTK data folder of this test's own: empty until a test writes a sentence model into it."""
    import nltk
    import nltk.tokenize

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    yield tmp_path
    nltk.tokenize._get_punkt_tokenizer.cache_clear()


def test_rouge_lsum_split_summaries_without_nltk_data_says_how(nltk_data: Path) -> None:
    with pytest.raises(HarnessError, match=r"python -m nltk.downloader punkt_tab"):
        get_metric("rougeLsum", split_summaries=True)


def test_rouge_lsum_split_summaries_equals_rouge_score(nltk_data: Path) -> None:
    # No model hub here: a Punkt sentence model trained on the built-in English data stands in for NLTK's
    # download; rouge-score then splits sentences with exactly the same model as we do.
    from nltk.tokenize.punkt import PunktTrainer, save_punkt_params

    corpus = " ".join(path.read_text(encoding="utf-8") for path in sorted(BUILTIN_DATA.glob("*.jsonl")))
    trainer = PunktTrainer()
    trainer.train("Dr. Smith went home. He was tired. Mr. Jones agreed. " * 5 + corpus, finalize=True)
    model = nltk_data / "tokenizers" / "punkt_tab" / "english"
    model.parent.mkdir(parents=True)
    save_punkt_params(trainer.get_params(), dir=str(model))

    metric = get_metric("rougeLsum", split_summaries=True)
    # Sentences in the other order: summary-level LCS matches each sentence, one-line LCS only one.
    prediction = "Dr. Smith came home. It was happy. The cat sat."
    reference = "A cat sat down. It was very happy. Then Dr. Smith came home at last."
    expected = rouge_scorer.RougeScorer(["rougeLsum"], split_summaries=True).score(reference, prediction)
    outcome = SampleOutcome("generate_until", prediction=prediction, target=reference)
    expected_f = expected["rougeLsum"].fmeasure
    assert metric.sample_statistics(outcome)[0] == pytest.approx(expected_f, abs=TOLERANCE)
    # The split really happened: on one line the summary-level score is a different number.
    unsplit = rouge_scorer.RougeScorer(["rougeLsum"]).score(reference, prediction)["rougeLsum"].fmeasure
    assert expected_f != pytest.approx(unsplit)


# -- the official SQuAD v2.0 evaluation functions (normalize_answer, get_tokens, compute_exact/f1) ----
def _official_normalize_answer(s: str) -> str:
    def remove_articles(text: str) -> str:
        regex = re.compile(r"\b(a|an|the)\b", re.UNICODE)
        return re.sub(regex, " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def _official_get_tokens(s: str) -> list[str]:
    if not s:
        return []
    return _official_normalize_answer(s).split()


def _official_compute_exact(a_gold: str, a_pred: str) -> int:
    return int(_official_normalize_answer(a_gold) == _official_normalize_answer(a_pred))


def _official_compute_f1(a_gold: str, a_pred: str) -> float:
    gold_toks = _official_get_tokens(a_gold)
    pred_toks = _official_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


ANSWER_PIECES = [
    "The",
    "the",
    "an",
    "A",
    "answer",
    "Answer!",
    "Paris",
    "paris,",
    "theatre",
    "an-",
    "42",
    "(",
    "é",
    "日本",
]


@pytest.mark.parametrize("seed", SEEDS)
def test_token_f1_and_exact_match_match_the_official_squad_script(seed: int) -> None:
    rng = random.Random(seed)

    def answer() -> str:
        return " ".join(rng.choice(ANSWER_PIECES) for _ in range(rng.randint(0, 6)))

    predictions = [answer() for _ in range(200)]
    references = [[answer() for _ in range(rng.randint(1, 3))] for _ in predictions]
    outcomes = _outcomes(predictions, references)
    for name, official in [
        ("token_f1", _official_compute_f1),
        ("squad_exact_match", _official_compute_exact),
    ]:
        metric = get_metric(name)
        stats = statistics_matrix(metric, outcomes)
        # metric_max_over_ground_truths: the best reference counts
        wanted = [max(official(g, p) for g in refs) for p, refs in zip(predictions, references, strict=True)]
        np.testing.assert_allclose(stats[:, 0], wanted, rtol=0, atol=TOLERANCE)
        assert 0 < sum(wanted) < len(wanted)  # both outcomes exercised


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("bleu", {"tokenize": "intl", "smooth_method": "floor"}),
        ("chrf++", {"beta": 1}),
        ("ter", {"no_punct": True}),
        ("rougeLsum", {"use_stemmer": True, "measure": "recall"}),
        ("token_f1", {}),
        ("exact_match", {"regexes_to_ignore": ["a|b", "1"]}),
    ],
)
def test_signatures_name_settings_and_rebuild_the_metric(name: str, settings: dict[str, Any]) -> None:
    metric = get_metric(name, **settings)
    signature = metric.signature()
    assert signature.startswith(name + "|") and "|harness:" in signature
    rebuilt = metric_from_signature(signature)
    assert rebuilt.signature() == signature and rebuilt.statistic_names == metric.statistic_names
    if name in ("bleu", "chrf++", "ter"):
        assert f"|sacrebleu:{sacrebleu.__version__}|" in signature


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("bleu", {"tokenize": "nope"}, "unknown tokenize 'nope'"),
        ("bleu", {"smooth_method": "laplace"}, "unknown smooth_method"),
        ("bleu", {"tokenize": "flores200"}, "harness never downloads|SentencePiece model"),
        ("chrf", {"lowercase": "yes"}, "true or false"),
        ("rouge1", {"measure": "f1"}, "measure must be one of"),
        ("rougeL", {"split_summaries": True}, "does not accept"),
    ],
)
def test_bad_settings_are_one_line_user_errors(name: str, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        get_metric(name, **settings)


def test_ngram_grouping_is_exact_when_keys_are_huge() -> None:
    # Keys too wide to pack with their positions take the hashing path; both must agree with np.unique.
    rng = np.random.default_rng(0)
    for keys in (rng.integers(0, 50, 1000), rng.integers(0, 1 << 62, 1000) | (1 << 61)):
        ids, count = _group(keys.astype(np.int64))
        _, inverse = np.unique(keys, return_inverse=True)
        assert count == inverse.max() + 1
        assert all(len(set(inverse[ids == i])) == 1 for i in range(count))  # same id, same key


def test_clipped_matches_count_like_counters_with_many_references() -> None:
    rng = random.Random(3)
    hyps = ["".join(rng.choice("abcé😀") for _ in range(rng.randint(0, 15))) for _ in range(200)]
    refs = [
        ["".join(rng.choice("abcé😀") for _ in range(rng.randint(0, 15))) for _ in range(3)] for _ in hyps
    ]
    texts, unit, side = [], [], []
    for index, (hyp, rs) in enumerate(zip(hyps, refs, strict=True)):
        for slot, text in enumerate([hyp, *rs]):
            texts.append(text)
            unit.append(index)
            side.append(slot)
    matches = clipped_matches(encode_chars(texts, unit, side), len(hyps), 4)
    for index, (hyp, rs) in enumerate(zip(hyps, refs, strict=True)):
        for n in range(1, 5):
            grams = collections.Counter(hyp[i : i + n] for i in range(len(hyp) - n + 1))
            ref_grams = [collections.Counter(r[i : i + n] for i in range(len(r) - n + 1)) for r in rs]
            expected = sum(min(c, max(rg[g] for rg in ref_grams)) for g, c in grams.items())
            assert matches[index, n - 1] == expected
