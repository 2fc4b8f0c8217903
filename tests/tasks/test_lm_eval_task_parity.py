"""lm-eval's own task YAML files give the same prompts and the same numbers in harness and in lm-eval.

Every task below is the YAML file installed with lm_eval 0.4.13, untouched: a wrapper in a temporary folder
only `include:`s it by absolute path and points it at a few synthetic documents written in the real
dataset's schema, so that the task's own templates, `!function` hooks, `process_docs`, `process_results`,
filters, few-shot settings and groups all run. Both harnesses evaluate the same tiny random-weight model
once for all tasks; each task is then its own test: identical requests, and identical metrics per filter
(and the group aggregate, with its standard error).

The model has a 384-token context: lm-eval refuses a generation budget (256 tokens by default) that is not
below the context, so the suite's usual 128-token model cannot run gsm8k. 384 still truncates gsm8k's and
mmlu_llama's 5-shot prompts and one long boolq passage on the left, and splits the long wikitext page into
several rolling windows, so truncation is compared too. Besides requests and metrics, each document's
answers (log-likelihoods, greedy flags, filtered generations) and per-document metric items are compared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import harness
from harness.requests import GenerationRequest, LoglikelihoodRequest, RollingLoglikelihoodRequest
from harness.tiny_model import build_tiny_model

lm_eval = pytest.importorskip("lm_eval")

LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"
CONTEXT = 384
# HFLM's generation budget where a task's generation_kwargs name none.
HFLM_MAX_GEN_TOKS = 256
GROUP = "mmlu_pair"
GROUP_MEMBERS = ("mmlu_astronomy", "mmlu_college_biology")

# -- synthetic documents, in each dataset's real schema -------------------------------------------------

# (question, correct answer, three wrong answers), reused by the question-answering datasets.
FACTS = [
    ("What do bees make", "honey", ["milk", "silk", "paper"]),
    ("Which planet is called the red planet", "Mars", ["Venus", "Jupiter", "Saturn"]),
    ("What gas do plants take in", "carbon dioxide", ["oxygen", "helium", "neon"]),
    ("How many legs does a spider have", "eight", ["six", "four", "ten"]),
    ("What is frozen water called", "ice", ["steam", "sand", "glass"]),
    ("Which organ pumps blood", "the heart", ["the lung", "the liver", "the skin"]),
    ("At what temperature does water boil", "100 degrees", ["50 degrees", "0 degrees", "20 degrees"]),
    ("Which animal is the largest mammal", "the blue whale", ["the elephant", "the horse", "the cow"]),
]


def _fact(i: int) -> tuple[str, str, list[str]]:
    return FACTS[i % len(FACTS)]


def _with_gold(i: int) -> tuple[list[str], int]:
    """Four options with the correct one at a position that varies with i."""
    _, right, wrong = _fact(i)
    gold = (i * 3 + 1) % 4
    options = list(wrong)
    options.insert(gold, right)
    return options, gold


def arc_doc(i: int) -> dict[str, Any]:
    question, _, _ = _fact(i)
    options, gold = _with_gold(i)
    # ARC mixes letter and digit labels, and a few questions have three or five options.
    labels = ["1", "2", "3", "4"] if i % 3 == 2 else ["A", "B", "C", "D"]
    if i % 4 == 3:
        options, labels = [*options, "none of these"], [*labels, "E" if labels[0] == "A" else "5"]
    return {
        "id": f"Mercury_{7000 + i}",
        "question": question + "?",
        "choices": {"text": options, "label": labels},
        "answerKey": labels[gold],
    }


HELLASWAG_LABELS = ["Baking cookies", "Washing a car", "Personal Care and Style", "Playing guitar"]


def hellaswag_doc(i: int) -> dict[str, Any]:
    activity = HELLASWAG_LABELS[i % len(HELLASWAG_LABELS)]
    ctx_a = f"A person stands in a kitchen with a bowl number {i}."
    ctx_b = "then they" if i % 2 else "the person"
    endings = [
        "mix the flour and the sugar together. [title] Add the eggs.",
        "drive the car into a lake  and swim away.",
        "[step] pour water on the floor and leave.",
        "play a song on the piano.",
    ]
    return {
        "ind": 100 + i,
        "activity_label": activity,
        "ctx_a": ctx_a,
        "ctx_b": ctx_b,
        "ctx": f"{ctx_a} {ctx_b}",
        "endings": endings[i % 4 :] + endings[: i % 4],
        "source_id": f"activitynet~v_{i}",
        "split": "val",
        "split_type": "indomain",
        "label": str(i % 4),
    }


def piqa_doc(i: int) -> dict[str, Any]:
    goals = ["To open a jar", "To dry wet shoes", "To keep bread fresh", "To cool soup quickly"]
    good = ["twist the lid.", "stuff them with paper.", "seal it in a bag.", "stir it in a wide bowl."]
    bad = ["hit it with a shoe.", "put them in water.", "leave it in the sun.", "cover it with a towel."]
    k, label = i % 4, i % 2
    sol = [bad[k], good[k]] if label else [good[k], bad[k]]
    return {"goal": goals[k], "sol1": sol[0], "sol2": sol[1], "label": label}


def winogrande_doc(i: int) -> dict[str, Any]:
    sentences = [
        ("The trophy does not fit into the suitcase because _ is too large.", "the trophy", "the suitcase"),
        ("Anna gave the book to Maria because _ had finished reading it.", "Anna", "Maria"),
        ("The ice melted in the cup because _ was warm.", "the ice", "the cup"),
    ]
    sentence, one, two = sentences[i % 3]
    return {"sentence": sentence, "option1": one, "option2": two, "answer": "1" if i % 2 == 0 else "2"}


def lambada_doc(i: int) -> dict[str, Any]:
    texts = [
        "She opened the door and saw her old friend standing in the rain",
        "The baker woke before dawn to light the oven and knead the bread",
        "After a long day in the fields the farmer finally went home",
        "He looked at the map once more and chose the road to the mountains",
    ]
    return {"text": texts[i % 4] + ("" if i < 4 else f" again and again {i}")}


def wikitext_doc(i: int) -> dict[str, Any]:
    body = (
        " = Valkyria Chronicles = \n The game @-@ series began in 2008 , and sold 1 @,@ 000 copies . "
        "It is set in a fictional world ( Europa ) ; the story follows a squad 's members . \n"
        " = = Gameplay = = \n Players move units on a map : each turn lasts 3 @.@ 5 minutes . \n"
    )
    # One page long enough for several rolling windows of the 384-token model.
    return {"page": body * (8 if i == 0 else 1 + i % 2)}


def gsm8k_doc(i: int) -> dict[str, Any]:
    a, b = 3 + i, 4 + 2 * i
    # A random model never writes "#### <number>", so strict-match extracts its fallback "[invalid]"; two
    # answers equal to it (after exact_match's ignore_case and regexes_to_ignore) make some scores 1.
    final = {1: "[invalid]", 3: "[INVALID]."}.get(i, str(a + b))
    return {
        "question": f"Tom has {a} apples and buys {b} more. How many apples does Tom have now?",
        "answer": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {final}",
    }


def boolq_doc(i: int) -> dict[str, Any]:
    question, right, _ = _fact(i)
    # The first passage is longer than the model's context: lm-eval truncates it on the left.
    passage = f"Fact {i}: the answer to '{question}' is {right}. " * (40 if i == 0 else 1)
    return {
        "question": question.lower() + " " + ("is " + right if i % 2 else "is nothing"),
        "passage": passage.strip(),
        "idx": i,
        "label": i % 2,
    }


def mmlu_doc(i: int, subject: str) -> dict[str, Any]:
    question, _, _ = _fact(i)
    options, gold = _with_gold(i)
    return {"question": f" {question}?\n", "subject": subject, "choices": options, "answer": gold}


def truthfulqa_doc(i: int) -> dict[str, Any]:
    question, right, wrong = _fact(i)
    mc1 = [right, *wrong]
    mc2 = [right, f"It is {right}", *wrong][: 3 + i % 3]
    return {
        "question": question + "?",
        "mc1_targets": {"choices": mc1, "labels": [1, 0, 0, 0]},
        "mc2_targets": {"choices": mc2, "labels": [1, 1] + [0] * (len(mc2) - 2)},
    }


def truthfulqa_gen_doc(i: int) -> dict[str, Any]:
    question, right, wrong = _fact(i)
    return {
        "type": "Adversarial",
        "category": "Misconceptions",
        "question": f" {question}? ",
        "best_answer": f"It is {right}",
        "correct_answers": [f"It is {right}", right, ""][: 2 + i % 2],
        "incorrect_answers": [f"It is {wrong[0]}.", wrong[1]],
        "source": "https://en.wikipedia.org/wiki/List_of_common_misconceptions",
    }


def sciq_doc(i: int) -> dict[str, Any]:
    question, right, wrong = _fact(i)
    supports = ["", f"\n{question} is a common question. The answer is {right}.", f"  Note {i}."]
    return {
        "question": question + "?",
        "distractor1": wrong[0],
        "distractor2": wrong[1],
        "distractor3": wrong[2],
        "correct_answer": right,
        "support": supports[i % 3],
    }


def triviaqa_doc(i: int) -> dict[str, Any]:
    question, right, _ = _fact(i)
    aliases = [right, right.title(), f"{right}s"]
    return {
        "question": question,
        "question_id": f"tc_{i}",
        "question_source": "http://www.quiz.example/",
        "answer": {
            "aliases": aliases,
            "normalized_aliases": [alias.lower() for alias in aliases],
            "matched_wiki_entity_name": "",
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": right.lower(),
            "type": "WikipediaEntity",
            "value": right,
        },
    }


def nq_open_doc(i: int) -> dict[str, Any]:
    question, right, _ = _fact(i)
    return {"question": question.lower(), "answer": [right, f"the {right}"][: 1 + i % 2]}


def bbh_doc(i: int) -> dict[str, Any]:
    one, two = ["That was a great idea, said no one ever", "That was a good idea"][:: 1 if i % 2 else -1]
    return {
        "input": f"Which statement is sarcastic?\nOptions:\n(A) {one} {i}\n(B) {two} {i}",
        "target": "(B)" if i % 2 == 0 else "(A)",
    }


def jcommonsenseqa_doc(i: int) -> dict[str, Any]:
    words = ["りんご", "みかん", "ぶどう", "もも", "なし", "いちご"]
    return {
        "q_id": i,
        "question": f"赤くて丸い果物はどれ？ ({i})",
        **{f"choice{k}": words[(i + k) % len(words)] for k in range(5)},
        "label": i % 5,
    }


def gpqa_doc(i: int) -> dict[str, Any]:
    question, right, wrong = _fact(i)
    return {
        "Record ID": f"rec{i}",
        "Question": f" {question}?",
        "Correct Answer": right,
        "Incorrect Answer 1": wrong[0],
        "Incorrect Answer 2": f"[title] {wrong[1]}",
        "Incorrect Answer 3": wrong[2],
    }


def _docs(make: Any, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [make(i) for i in range(start, start + count)]


def _mmlu(subject: str, count: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "test": [mmlu_doc(i, subject) for i in range(count)],
        "dev": [mmlu_doc(i, subject) for i in range(3, 8)],
    }


# task -> (the lm-eval YAML file, documents per split, extra wrapper keys). The only extra key is
# `num_fewshot`, set to the Open LLM Leaderboard's shots where those reach code that 0-shot leaves out:
# hellaswag's processed training split, few-shot turns of winogrande's multiple inputs and MMLU's first_n
# sampler on the dev split. gsm8k's own YAML already asks for 5 shots.
TASKS: dict[str, tuple[str, dict[str, list[dict[str, Any]]], dict[str, Any]]] = {
    "arc_easy": (
        "arc/arc_easy.yaml",
        {"train": _docs(arc_doc, 3), "validation": _docs(arc_doc, 3, 3), "test": _docs(arc_doc, 8)},
        {},
    ),
    "hellaswag": (
        "hellaswag/hellaswag.yaml",
        {"train": _docs(hellaswag_doc, 11, 10), "validation": _docs(hellaswag_doc, 7)},
        {"num_fewshot": 10},
    ),
    "piqa": ("piqa/piqa.yaml", {"train": _docs(piqa_doc, 3), "validation": _docs(piqa_doc, 7)}, {}),
    "winogrande": (
        "winogrande/default.yaml",
        {"train": _docs(winogrande_doc, 6, 10), "validation": _docs(winogrande_doc, 7)},
        {"num_fewshot": 5},
    ),
    "lambada_openai": ("lambada/lambada_openai.yaml", {"test": _docs(lambada_doc, 7)}, {}),
    "wikitext": (
        "wikitext/wikitext.yaml",
        {
            "train": _docs(wikitext_doc, 1),
            "validation": _docs(wikitext_doc, 1),
            "test": _docs(wikitext_doc, 4),
        },
        {},
    ),
    "gsm8k": (
        "gsm8k/gsm8k.yaml",
        {"train": _docs(gsm8k_doc, 7, 10), "test": _docs(gsm8k_doc, 5)},
        {},
    ),
    "boolq": (
        "super_glue/boolq/default.yaml",
        {"train": _docs(boolq_doc, 3), "validation": _docs(boolq_doc, 7)},
        {},
    ),
    "mmlu_anatomy": ("mmlu/default/mmlu_anatomy.yaml", _mmlu("anatomy", 6), {"num_fewshot": 5}),
    "mmlu_astronomy": ("mmlu/default/mmlu_astronomy.yaml", _mmlu("astronomy", 4), {}),
    "mmlu_college_biology": ("mmlu/default/mmlu_college_biology.yaml", _mmlu("college_biology", 7), {}),
    "truthfulqa_mc2": ("truthfulqa/truthfulqa_mc2.yaml", {"validation": _docs(truthfulqa_doc, 6)}, {}),
    "truthfulqa_gen": ("truthfulqa/truthfulqa_gen.yaml", {"validation": _docs(truthfulqa_gen_doc, 4)}, {}),
    "sciq": (
        "sciq/sciq.yaml",
        {"train": _docs(sciq_doc, 3), "validation": _docs(sciq_doc, 3), "test": _docs(sciq_doc, 7)},
        {},
    ),
    "triviaqa": (
        "triviaqa/default.yaml",
        {"train": _docs(triviaqa_doc, 3), "validation": _docs(triviaqa_doc, 5)},
        {},
    ),
    "nq_open": (
        "nq_open/nq_open.yaml",
        {"train": _docs(nq_open_doc, 3), "validation": _docs(nq_open_doc, 5)},
        {},
    ),
    # Beyond the usual suite, tasks for what it leaves out: a generation prefix (in few-shot turns too), an
    # empty `until`, a process_docs that drops documents, few-shot samples written in the YAML, and a
    # fewshot_split that the task's process_docs applies to (with a newline target delimiter).
    "arc_challenge_llama": (
        "llama3/instruct/arc_challenge/arc_challenge_llama.yaml",
        {"test": _docs(arc_doc, 8)},
        {},
    ),
    "mmlu_llama_anatomy": ("llama3/instruct/mmlu/mmlu_anatomy.yaml", _mmlu("anatomy", 4), {}),
    "ja_leaderboard_jcommonsenseqa": (
        "japanese_leaderboard/ja_leaderboard_jcommonsenseqa.yaml",
        {"train": _docs(jcommonsenseqa_doc, 4, 10), "validation": _docs(jcommonsenseqa_doc, 5)},
        {},
    ),
    # Its process_docs shuffles the options with Python's global generator, seeded as lm-eval seeds it.
    # lm-eval seeds once per run, so this holds only while no task it loads earlier draws from it too.
    "leaderboard_gpqa_main": (
        "leaderboard/gpqa/gpqa_main_zeroshot.yaml",
        {"train": _docs(gpqa_doc, 6)},
        {},
    ),
    "bbh_fewshot_snarks": ("bbh/fewshot/snarks.yaml", {"test": _docs(bbh_doc, 4)}, {}),
}
LEAF_TASKS = sorted(TASKS)
# What each harness is asked to run: the group stands for its two member subjects.
REQUESTED = [*(name for name in LEAF_TASKS if name not in GROUP_MEMBERS), GROUP]
SCORED = [*LEAF_TASKS, GROUP]


def _write_task_folder(folder: Path) -> None:
    for name, (original, splits, extra) in TASKS.items():
        files = {}
        for split, docs in splits.items():
            path = folder / "data" / f"{name}.{split}.jsonl"
            path.parent.mkdir(exist_ok=True)
            path.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
            files[split] = str(path)
        wrapper = {
            "include": str(LM_EVAL_TASKS / original),
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": files},
            **extra,
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(wrapper, sort_keys=False), encoding="utf-8")
    group = {
        "group": GROUP,
        "task": list(GROUP_MEMBERS),
        "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}],
        "metadata": {"version": 1.0},
    }
    (folder / f"{GROUP}.yaml").write_text(yaml.safe_dump(group, sort_keys=False), encoding="utf-8")


# -- running both harnesses -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """The tiny model is far faster on one thread: a second one mostly waits for a busy core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model-384"), max_position_embeddings=CONTEXT)


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm_eval_task_wrappers")
    _write_task_folder(folder)
    return folder


@pytest.fixture(scope="module")
def theirs(
    model_dir: Path, task_folder: Path, one_thread: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    import datasets.config
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = HFLM(pretrained=str(model_dir), batch_size=4, dtype="float32", device="cpu")
    with pytest.MonkeyPatch.context() as patch:
        # bootstrap_iters=0 makes lm-eval report no standard error at all; with a few iterations it reports
        # the closed-form one of every mean and bootstraps only perplexity (serially, without a pool).
        patch.setenv("DISABLE_MULTIPROC", "1")
        # lm-eval loads the JSON files through `datasets`, whose Arrow cache stays with this test run.
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("datasets-cache"))
        results = simple_evaluate(
            model=model,
            tasks=REQUESTED,
            task_manager=TaskManager(include_path=str(task_folder), include_defaults=False),
            bootstrap_iters=2,
            log_samples=True,
        )
    assert results is not None
    return results


@pytest.fixture(scope="module")
def ours(model_dir: Path, task_folder: Path, one_thread: None) -> harness.EvaluationReport:
    return harness.evaluate(
        f"hf:{model_dir}",
        REQUESTED,
        model_args={"batch_size": "4"},
        include_paths=[task_folder],
        bootstrap_resamples=0,
        write=False,
        use_cache=False,
    )


# -- comparing -------------------------------------------------------------------------------------------


def _their_requests(samples: list[dict[str, Any]]) -> dict[int, list[tuple[Any, ...]]]:
    by_doc: dict[int, list[tuple[Any, ...]]] = {}
    for sample in samples:
        arguments = [_their_arguments(argument) for argument in sample["arguments"]]
        # A task with several filters logs each document once per filter, with the same requests.
        assert by_doc.setdefault(sample["doc_id"], arguments) == arguments
    return by_doc


def _their_arguments(argument: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(argument) == 2 and isinstance(argument[1], dict):  # generate_until: (context, gen_kwargs)
        settings = argument[1]
        budget = settings.get("max_gen_toks", HFLM_MAX_GEN_TOKS)
        return (argument[0], tuple(settings["until"]), budget, bool(settings.get("do_sample", False)))
    return tuple(argument)


def _our_requests(evaluation: Any) -> dict[int, list[tuple[Any, ...]]]:
    by_doc: dict[int, list[tuple[Any, ...]]] = {}
    for instance in evaluation.instances:
        rows = by_doc.setdefault(instance.doc_id, [])
        for request in instance.requests:
            if isinstance(request, LoglikelihoodRequest):
                rows.append((request.context, request.continuation))
            elif isinstance(request, RollingLoglikelihoodRequest):
                rows.append((request.text,))
            else:
                assert isinstance(request, GenerationRequest)
                settings = request.settings
                rows.append((request.prompt, settings.stop, settings.max_tokens, settings.do_sample))
    return by_doc


def _evaluation(report: harness.EvaluationReport, task: str) -> Any:
    (found,) = [evaluation for evaluation in report.evaluations if evaluation.task.name == task]
    return found


def _their_metrics(results: dict[str, Any]) -> Iterator[tuple[str, float, Any]]:
    """(harness's metric name, value, lm-eval's stderr) of every metric lm-eval reports for a task."""
    for key, value in results.items():
        if "," not in key or "_stderr," in key:
            continue
        metric, _, filter_name = key.partition(",")
        name = metric if filter_name == "none" else key
        yield name, value, results.get(f"{metric}_stderr,{filter_name}")


# lm-eval bootstraps these standard errors (harness bootstraps them with its own draws), so only their
# values are compared.
BOOTSTRAPPED = {("lambada_openai", "perplexity")}


@pytest.mark.parametrize("task", LEAF_TASKS)
def test_requests_equal_lm_eval(task: str, ours: harness.EvaluationReport, theirs: dict[str, Any]) -> None:
    expected = _their_requests(theirs["samples"][task])
    got = _our_requests(_evaluation(ours, task))
    # Every document, unless the task's process_docs drops some (arc_challenge_llama keeps 4 options).
    assert sorted(got) == sorted(expected) == list(range(len(expected)))
    if task != "arc_challenge_llama":
        assert len(expected) == len(TASKS[task][1][_eval_split(task)])
    for doc_id, arguments in expected.items():
        assert got[doc_id] == arguments, (task, doc_id)


def _eval_split(task: str) -> str:
    """The split each task evaluates: its test split where the YAML (and our data) has one."""
    splits = TASKS[task][1]
    return next(split for split in ("test", "validation", "train") if split in splits)


@pytest.mark.parametrize("task", SCORED)
def test_metrics_equal_lm_eval(task: str, ours: harness.EvaluationReport, theirs: dict[str, Any]) -> None:
    reference = theirs["results"][task]
    rows = {score.metric: score for score in ours.scores if score.task == task}
    expected = list(_their_metrics(reference))
    assert expected, f"lm-eval reports no metric for {task}"
    assert sorted(rows) == sorted(name for name, _, _ in expected)
    higher_is_better = theirs["higher_is_better"][task]
    for name, value, stderr in expected:
        row = rows[name]
        assert row.value == pytest.approx(value, rel=1e-4, abs=1e-12), (task, name)
        assert row.higher_is_better == higher_is_better[name.partition(",")[0]], (task, name)
        members = GROUP_MEMBERS if task == GROUP else (task,)  # a group counts its tasks' documents
        assert row.n == sum(theirs["n-samples"][member]["effective"] for member in members), (task, name)
        if isinstance(stderr, float) and (task, name) not in BOOTSTRAPPED:
            assert row.stderr is not None and math.isfinite(row.stderr), (task, name)
            assert row.stderr == pytest.approx(stderr, rel=1e-4, abs=1e-12), (task, name, "stderr")


def _samples_by_filter(theirs: dict[str, Any], task: str) -> dict[str, dict[int, dict[str, Any]]]:
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for sample in theirs["samples"][task]:
        found.setdefault(sample["filter"], {})[sample["doc_id"]] = sample
    return found


@pytest.mark.parametrize("task", LEAF_TASKS)
def test_answers_equal_lm_eval(task: str, ours: harness.EvaluationReport, theirs: dict[str, Any]) -> None:
    """Per document: the model's answers (log-likelihoods, greedy flags, filtered generations)."""
    evaluation = _evaluation(ours, task)
    samples = _samples_by_filter(theirs, task)[evaluation.task.filters[0].name]
    for outcome, instance in zip(evaluation.outcomes, evaluation.instances, strict=True):
        sample = samples[instance.doc_id]
        responses = [response[0] for response in sample["resps"]]
        where = (task, instance.doc_id)
        if outcome.output_type == "multiple_choice":
            their_logprobs = [float(logprob) for logprob, _ in responses]
            assert list(outcome.choice_logprobs) == pytest.approx(their_logprobs, rel=1e-4), where
        elif outcome.output_type == "loglikelihood":
            ((logprob, is_greedy),) = responses
            assert outcome.logprob == pytest.approx(logprob, rel=1e-4), where
            assert outcome.is_greedy == is_greedy, where
        elif outcome.output_type == "loglikelihood_rolling":
            assert outcome.logprob == pytest.approx(responses[0], rel=1e-4), where
        else:
            assert outcome.prediction == sample["filtered_resps"][0], where


def _item_values(item: Any) -> list[float]:
    """lm-eval's per-document metric item: a number, or a (log-likelihood, units) pair."""
    return [float(x) for x in item] if isinstance(item, list | tuple) else [float(item)]


@pytest.mark.parametrize("task", LEAF_TASKS)
def test_document_scores_equal_lm_eval(
    task: str, ours: harness.EvaluationReport, theirs: dict[str, Any]
) -> None:
    """Per document and filter: every metric's item, as lm-eval logs it in its samples."""
    evaluation = _evaluation(ours, task)
    compared = 0
    for filter_name, samples in _samples_by_filter(theirs, task).items():
        for doc_id, sample in samples.items():
            for metric in sample["metrics"]:
                name = metric if filter_name == "none" else f"{metric},{filter_name}"
                item = _item_values(sample[metric])
                row = [float(x) for x in evaluation.statistics[name][doc_id][: len(item)]]
                assert row == pytest.approx(item, rel=1e-4, abs=1e-12), (task, doc_id, name)
                compared += 1
    assert compared >= len(evaluation.instances)


def test_a_function_aggregation_is_refused_not_ignored(tmp_path: Path) -> None:
    """super_glue's cb averages F1 over its three classes with its own function: harness cannot, so it
    says so instead of reporting its binary F1 under lm-eval's name."""
    from harness.errors import HarnessError
    from harness.tasks.registry import resolve_selection

    docs = [{"premise": "It rains.", "hypothesis": "it is wet", "idx": i, "label": i % 3} for i in range(3)]
    data = tmp_path / "cb.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
    wrapper = {
        "include": str(LM_EVAL_TASKS / "super_glue/cb/default.yaml"),
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"train": str(data), "validation": str(data)}},
    }
    (tmp_path / "cb.yaml").write_text(yaml.safe_dump(wrapper), encoding="utf-8")
    (task,) = resolve_selection(["cb"], [tmp_path]).tasks
    with pytest.raises(HarnessError, match="metric 'f1': a !function aggregation is not supported"):
        task.metrics  # noqa: B018
