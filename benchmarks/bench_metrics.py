"""Wall time of harness's BLEU + chrF + ROUGE-L + token F1 against the reference libraries, one process.

Scores N prediction/reference pairs (default 10,000; seeded, English-like text with Zipf-distributed
words, predictions are noisy copies of their references) both ways and checks the numbers agree:

* reference: `sacrebleu.corpus_bleu`, `sacrebleu.corpus_chrf`, rouge-score's `RougeScorer(["rougeL"])`
  per pair (the mean F-measure) and the official SQuAD v2.0 token F1, called directly;
* harness: `metrics.corpus.score_texts` with the same four metrics, which also keeps per-document
  statistics and computes standard errors and 1,000-resample bootstrap intervals (the default).

Tokeniser caches (sacrebleu's and ours) are cleared before every timed section, so neither side
profits from the other's work. Sections alternate; the median of --repeats runs is reported.

    python benchmarks/bench_metrics.py [--pairs 10000] [--repeats 3] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sacrebleu  # noqa: E402
from rouge_score import rouge_scorer  # noqa: E402
from sacrebleu.tokenizers import tokenizer_13a  # noqa: E402

from harness.metrics.corpus import score_texts  # noqa: E402
from harness.metrics.rouge import rouge_tokens  # noqa: E402

METRICS = ("bleu", "chrf", "rougeL", "token_f1")


def corpus(pairs: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(1, 10))) for _ in range(20_000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf's law
    references, predictions = [], []
    for _ in range(pairs):
        words = rng.choices(vocabulary, weights, k=rng.randint(8, 40))
        words[0] = words[0].capitalize()
        reference = " ".join(words) + rng.choice([".", "!", "?", "."])
        noisy = [w if rng.random() < 0.75 else rng.choice(vocabulary) for w in words if rng.random() < 0.9]
        if len(noisy) > 3 and rng.random() < 0.3:  # an occasional swapped phrase
            i = rng.randrange(len(noisy) - 2)
            noisy[i], noisy[i + 1] = noisy[i + 1], noisy[i]
        references.append(reference)
        predictions.append(" ".join(noisy) + ("." if rng.random() < 0.7 else ""))
    return predictions, references


# The official SQuAD v2.0 evaluation script's normalisation and F1, as the reference for token F1.
def _squad_normalize(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def _squad_f1(gold: str, pred: str) -> float:
    gold_toks, pred_toks = _squad_normalize(gold).split(), _squad_normalize(pred).split()
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return float(gold_toks == pred_toks)
    if num_same == 0:
        return 0.0
    precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def reference_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge = [
        scorer.score(ref, pred)["rougeL"].fmeasure for ref, pred in zip(references, predictions, strict=True)
    ]
    f1 = [_squad_f1(ref, pred) for ref, pred in zip(references, predictions, strict=True)]
    return {
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score,
        "chrf": sacrebleu.corpus_chrf(predictions, [references]).score,
        "rougeL": sum(rouge) / len(rouge),
        "token_f1": sum(f1) / len(f1),
    }


def harness_scores(predictions: list[str], references: list[str], resamples: int) -> dict[str, float]:
    result = score_texts(list(METRICS), predictions, references, bootstrap_resamples=resamples)
    return {score.metric: score.value for score in result.scores}


def _clear_caches() -> None:
    tokenizer_13a.Tokenizer13a.__call__.cache_clear()
    rouge_tokens.cache_clear()


def _timed(function: Callable[[], dict[str, float]]) -> tuple[float, dict[str, float]]:
    _clear_caches()
    started = time.perf_counter()
    values = function()
    return time.perf_counter() - started, values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples on the harness side")
    args = parser.parse_args()
    predictions, references = corpus(args.pairs, seed=0)
    reference_times: list[float] = []
    harness_times: list[float] = []
    for repeat in range(args.repeats):
        runs = [("reference", lambda: reference_scores(predictions, references))]
        runs.append(("harness", lambda: harness_scores(predictions, references, args.resamples)))
        if repeat % 2:
            runs.reverse()
        values: dict[str, dict[str, float]] = {}
        for side, function in runs:
            elapsed, values[side] = _timed(function)
            (reference_times if side == "reference" else harness_times).append(elapsed)
        for name in METRICS:
            ours, theirs = values["harness"][name], values["reference"][name]
            if abs(ours - theirs) > 1e-9:
                raise SystemExit(f"{name}: harness {ours!r} != reference {theirs!r}")
    reference_median, harness_median = statistics.median(reference_times), statistics.median(harness_times)
    print(f"{args.pairs} pairs, {' + '.join(METRICS)}, median of {args.repeats} runs:")
    for name in METRICS:
        print(f"  {name:9s} {values['harness'][name]:.6f} (identical to the reference within 1e-9)")
    each = ", ".join(f"{t:.2f}" for t in reference_times)
    print(f"  reference (sacrebleu + rouge-score + SQuAD script): {reference_median:.2f} s  (runs: {each})")
    each = ", ".join(f"{t:.2f}" for t in harness_times)
    print(f"  harness ({args.resamples} bootstrap resamples):        {harness_median:.2f} s  (runs: {each})")
    print(f"  ratio harness / reference: {harness_median / reference_median:.2f}x")


if __name__ == "__main__":
    main()
