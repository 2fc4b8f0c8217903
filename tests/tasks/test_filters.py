"""Response filters agree with lm-eval 0.4.13's own filter classes, output for output.

Every case builds the same filter_list twice, with harness.tasks.filters and with lm-eval's
build_filter_ensemble (parsed the way lm-eval's ConfigurableTask parses a YAML), applies both to the same
responses and compares the reprs, so that "1" versus 1 or a list versus a tuple counts as a difference.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lm_eval
import pytest
import yaml
from lm_eval.filters import build_filter_ensemble

from harness.errors import HarnessError
from harness.tasks.filters import DEFAULT_PIPELINE, FILTERS, UNSUPPORTED_FILTERS, build_filter_pipelines

LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"
SOURCE = Path("tasks/example.yaml")


def load_task_yaml(path: Path) -> dict[str, Any]:
    """A task YAML as lm-eval reads it: `!function module.name` imports module.py beside the YAML."""

    class Loader(yaml.SafeLoader):
        pass

    def function(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        assert isinstance(node, yaml.ScalarNode), node
        module_name, attribute = str(loader.construct_scalar(node)).rsplit(".", 1)
        spec = importlib.util.spec_from_file_location(module_name, path.parent / f"{module_name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, attribute)

    Loader.add_constructor("!function", function)
    config = yaml.load(path.read_text(), Loader=Loader)
    assert isinstance(config, dict)
    return config


def lm_eval_outputs(
    filter_list: Sequence[Mapping[str, Any]] | None, responses: list[list[Any]], docs: list[dict[str, Any]]
) -> dict[str, list[Any]]:
    if filter_list is None:
        ensembles = [build_filter_ensemble("none", [("take_first", None)])]
    else:  # as lm_eval.api.task.ConfigurableTask.__init__ turns filter_list into ensembles
        ensembles = [
            build_filter_ensemble(
                pipeline["name"],
                [
                    (step["function"], {key: value for key, value in step.items() if key != "function"})
                    for step in pipeline["filter"]
                ],
            )
            for pipeline in filter_list
        ]
    outputs = {}
    for ensemble in ensembles:
        instances = [
            SimpleNamespace(resps=list(doc_responses), doc=doc, filtered_resps={})
            for doc_responses, doc in zip(responses, docs, strict=True)
        ]
        ensemble.apply(instances)
        outputs[ensemble.name] = [instance.filtered_resps[ensemble.name] for instance in instances]
    return outputs


def assert_same_as_lm_eval(
    filter_list: Sequence[Mapping[str, Any]] | None,
    responses: list[list[Any]],
    docs: list[dict[str, Any]] | None = None,
) -> dict[str, list[Any]]:
    docs = docs if docs is not None else [{} for _ in responses]
    ours = {
        pipeline.name: pipeline.apply(responses, docs)
        for pipeline in build_filter_pipelines(filter_list, SOURCE)
    }
    theirs = lm_eval_outputs(filter_list, responses, docs)
    assert repr(ours) == repr(theirs)
    return ours


def single_pipeline(*steps: Any) -> list[dict[str, Any]]:
    return [{"name": "under-test", "filter": list(steps)}]


TAKE_FIRST = {"function": "take_first"}

GSM8K_RESPONSES = [
    ["Natalia sold 48 clips in April.\n#### 72"],
    ["#### -1,234.5"],
    ["She pays $1,000 in total and then 17 more."],
    ["I cannot tell."],
    [""],
    ["#### 3\n#### 4"],
    ["The total is 12. So 12 dollars.", "#### 6"],
    ["- 7 and -8"],
    ["#### .5 and 1.\n"],
]


@pytest.mark.parametrize("task_yaml", ["gsm8k/gsm8k.yaml", "polemo2/polemo2_in.yaml"])
def test_real_lm_eval_task_pipelines(task_yaml: str) -> None:
    filter_list = load_task_yaml(LM_EVAL_TASKS / task_yaml)["filter_list"]
    responses = [*GSM8K_RESPONSES, ["A"], ["It is B, not C."], ["(D)"], ["none of them"]]
    outputs = assert_same_as_lm_eval(filter_list, responses)
    if task_yaml.startswith("gsm8k"):
        assert outputs["strict-match"][:2] == ["72", "-1,234.5"]
        assert outputs["flexible-extract"][2] == "17"


def test_gsm8k_platinum_self_consistency_pipelines() -> None:
    path = LM_EVAL_TASKS / "gsm8k_platinum/gsm8k-platinum-cot-self-consistency.yaml"
    filter_list = load_task_yaml(path)["filter_list"]
    shuffled = random.Random(13)
    responses = [
        [f"The answer is {shuffled.choice(['3', '4', '1,5', '-2', 'unknown'])}" for _ in range(64)]
        for _ in range(6)
    ]
    outputs = assert_same_as_lm_eval(filter_list, responses)
    assert set(outputs) == {"score-first", "maj@64", "maj@8"}


@pytest.mark.parametrize(
    "task_yaml", ["bbh/cot_zeroshot/temporal_sequences.yaml", "bbh/cot_zeroshot/word_sorting.yaml"]
)
def test_filter_classes_given_as_function(task_yaml: str) -> None:
    filter_list = load_task_yaml(LM_EVAL_TASKS / task_yaml)["filter_list"]
    docs = [
        {"input": "When did Ann go? Options:\n(A) 5am to 6am\n(B) 11am to 1pm\n(C) 3pm to 4pm\nList: b a c"},
        {"input": "Which? Options:\n(A) never\n(B) Always\nList: zeta alpha"},
    ]
    responses = [
        ["So the answer is (B).", "Ann went from 3pm to 4pm. The answer is c a b."],
        ["the answer is: always!", "alpha zeta, so The answer is alpha zeta."],
    ]
    assert_same_as_lm_eval(filter_list, responses, docs)


REGEX_CASES: list[tuple[dict[str, Any], list[list[Any]]]] = [
    ({"function": "regex"}, GSM8K_RESPONSES),
    ({"function": "regex", "regex_pattern": r"\d+", "group_select": -1}, GSM8K_RESPONSES),
    ({"function": "regex", "regex_pattern": r"(\d+)", "group_select": 1}, [["1 2", "10 20 30"], ["7 8"]]),
    ({"function": "regex", "regex_pattern": r"\d+", "group_select": -2}, [["1 2", "10 20 30"], ["7 8"]]),
    ({"function": "regex", "regex_pattern": r"(a)|(b)"}, [["b then a", "a"], ["c"]]),
    ({"function": "regex", "regex_pattern": r"(a)|(b)", "group_select": -1}, [["b then a", "ab"]]),
    # every group empty: the fallback is stripped; no match at all: it is kept as is
    ({"function": "regex", "regex_pattern": r"(x)?(y)?z", "fallback": "  none  "}, [["z", "q", "yz"]]),
    ({"function": "regex", "regex_pattern": r"(\s*\w+\s*)", "fallback": "?"}, [["  padded  ", "..."]]),
    ({"function": "regex", "regex_pattern": r"answer: (\w*)"}, [["answer: ", "answer: yes", "answer"]]),
    ({"function": "regex", "regex_pattern": r"(\w+)"}, [[None, 7, "word"]]),
    (
        {
            "function": "regex",
            "regex_pattern": "((?<=The answer is )(.*)(?=.)|(?<=the answer is )(.*)(?=.))",
        },
        [["So the answer is (C).", "The answer is 42!"], ["no answer"]],
    ),
]


@pytest.mark.parametrize("then_take_first", [True, False], ids=["take_first", "lists"])
@pytest.mark.parametrize(("step", "responses"), REGEX_CASES, ids=[str(i) for i in range(len(REGEX_CASES))])
def test_regex(step: dict[str, Any], responses: list[list[Any]], then_take_first: bool) -> None:
    steps = [step, TAKE_FIRST] if then_take_first else [step]
    assert_same_as_lm_eval(single_pipeline(*steps), responses)


TEXT_RESPONSES = [["  Hello World \n", "\tMiXeD\t"], ["ÄßΣ", ""], [" (B) "]]


@pytest.mark.parametrize(
    "functions",
    [
        ["remove_whitespace"],
        ["lowercase"],
        ["uppercase"],
        ["remove_whitespace", "lowercase", "take_first"],
        ["uppercase", "remove_whitespace", "take_first"],
        # after take_first a document's value is one string, which later steps iterate character by character
        ["take_first", "uppercase"],
        ["take_first", "regex"],
    ],
)
def test_text_transformations(functions: list[str]) -> None:
    assert_same_as_lm_eval(single_pipeline(*({"function": name} for name in functions)), TEXT_RESPONSES)


MAP_RESPONSES = [["A", "B"], ["Z", ""], ["1", "C"]]


@pytest.mark.parametrize(
    "step",
    [
        {"function": "map", "mapping_dict": {"A": 0, "B": 1, "C": 2}, "default_value": -1},
        {"function": "map", "mapping_dict": {"A": "yes", "1": True}},
        {"function": "map", "mapping_dict": {1: "int key"}, "default_value": "unmapped"},
        {"function": "map"},
        {"function": "map", "mapping_dict": None, "default_value": 0},
    ],
)
@pytest.mark.parametrize("take_first_before", [False, True], ids=["lists", "after-take_first"])
def test_map(step: dict[str, Any], take_first_before: bool) -> None:
    steps = [TAKE_FIRST, step] if take_first_before else [step, TAKE_FIRST]
    assert_same_as_lm_eval(single_pipeline(*steps), MAP_RESPONSES)


VOTES: list[list[Any]] = [
    ["b", "a", "a", "b"],  # a tie goes to the response seen first
    ["x", "y", "z"],
    ["7", "7", "8", "8", "8"],
    [1, True, "1"],  # 1 == True, so they are counted together
    ["first", "second"],
]


@pytest.mark.parametrize(
    "steps",
    [
        [{"function": "majority_vote"}],
        [{"function": "majority_vote"}, TAKE_FIRST],
        [{"function": "take_first_k", "k": 1}],
        [{"function": "take_first_k", "k": 1}, {"function": "majority_vote"}, TAKE_FIRST],
        [{"function": "take_first_k", "k": 2}, {"function": "majority_vote"}, TAKE_FIRST],
        [{"function": "take_first_k", "k": 0}],
    ],
)
def test_selection(steps: list[dict[str, Any]]) -> None:
    outputs = assert_same_as_lm_eval(single_pipeline(*steps), VOTES)
    if steps == [{"function": "majority_vote"}, TAKE_FIRST]:
        assert outputs["under-test"][:2] == ["b", "x"]


def test_default_pipeline_is_take_first() -> None:
    responses: list[list[Any]] = [["first", "second"], [(-1.5, True), (-2.0, False)]]
    assert build_filter_pipelines(None) == (DEFAULT_PIPELINE,)
    assert assert_same_as_lm_eval(None, responses) == {"none": ["first", (-1.5, True)]}


def test_empty_pipeline_keeps_the_response_lists() -> None:
    assert_same_as_lm_eval([{"name": "raw", "filter": []}], [["a", "b"], ["c"]])


MMLU_DOCS = [
    {"question": "Capital of France?", "choices": ["Paris", "London", "Berlin", "Madrid"], "answer": 0},
    {"question": "Film?", "choices": ["Guilty", "Guilty of Romance", "Romance"], "answer": 1},
    {"question": "Agree?", "choices": ["Yes.", "No!", " the Maybe "], "answer": 2},
    # an empty choice adds an empty branch that matches everywhere, yet never counts as an answer
    {"question": "True?", "choices": ["True", "", "False"], "answer": 0},
]
MMLU_RESPONSES: list[list[Any]] = [
    ["The answer is (B).", "I'd say Berlin", "answer: C", "paris, of course", "nothing", None, "(A) or (D)"],
    ["Guilty of Romance", "guilty", "So: B", "(C)", "Romance, Guilty"],
    ["No", "no!", "maybe", "MAYBE.", "Answer:A", "yes"],
    ["hmm", "false", "It is False"],
]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"regex_pattern": r"(\([A-D]\))"},
        {"regex_pattern": r"(\([A-D]\))", "group_select": -1},
        {"regex_pattern": r"\(([A-D])\)|answer is ([A-D])"},
        {"ignore_case": True},
        {"ignore_punctuation": True},
        {"ignore_case": True, "ignore_punctuation": True, "fallback": "X"},
        {"regexes_to_ignore": [",", "(?i)the "], "ignore_case": True},
        {"regexes_to_ignore": None, "group_select": -1, "ignore_punctuation": True},
    ],
)
def test_multi_choice_regex(options: dict[str, Any]) -> None:
    responses = [
        [r for r in doc_responses if r is not None or not options] for doc_responses in MMLU_RESPONSES
    ]
    step = {"function": "multi_choice_regex", **options}
    assert_same_as_lm_eval(single_pipeline(step, TAKE_FIRST), responses, MMLU_DOCS)
    assert_same_as_lm_eval(single_pipeline(step), responses, MMLU_DOCS)


def test_multi_choice_regex_reads_letters_and_choice_text() -> None:
    outputs = assert_same_as_lm_eval(
        single_pipeline({"function": "multi_choice_regex", "regex_pattern": r"(\([A-D]\))"}),
        MMLU_RESPONSES[:1],
        MMLU_DOCS[:1],
    )
    assert outputs["under-test"][0][:5] == ["(B)", "(C)", "(C)", "[invalid]", "[invalid]"]


class SuffixFilter:
    """A filter class of a task's own, given in a YAML as `function: !function utils.SuffixFilter`."""

    def __init__(self, suffix: str = "!") -> None:
        self.suffix = suffix

    def apply(self, responses: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]) -> Any:
        return [[response + self.suffix for response in doc_responses] for doc_responses in responses]


def append_suffix(responses: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]) -> Any:
    return (
        [response + doc["suffix"] for response in doc_responses]
        for doc_responses, doc in zip(responses, docs, strict=True)
    )


@pytest.mark.parametrize(
    "steps",
    [
        [{"function": "custom", "filter_fn": append_suffix}],
        [
            {"function": "custom", "filter_fn": append_suffix},
            {"function": "regex", "regex_pattern": r"(\d+)!"},
        ],
        [TAKE_FIRST, {"function": "custom", "filter_fn": lambda values, docs: [v * 2 for v in values]}],
        [{"function": SuffixFilter}, TAKE_FIRST],
        [{"function": SuffixFilter, "suffix": "?"}, {"function": "custom", "filter_fn": append_suffix}],
    ],
)
def test_custom(steps: list[dict[str, Any]]) -> None:
    assert_same_as_lm_eval(single_pipeline(*steps), [["1", "2"], ["3"]], [{"suffix": "!"}, {"suffix": "?"}])


def test_registry_lists_every_lm_eval_filter_except_the_unsupported() -> None:
    from lm_eval.api.registry import filter_registry

    assert set(FILTERS.names()) | set(UNSUPPORTED_FILTERS) >= set(filter_registry.keys())
    assert not set(FILTERS.names()) & set(UNSUPPORTED_FILTERS)


def build_error(filter_list: Any, source: Path | None = SOURCE) -> str:
    with pytest.raises(HarnessError) as raised:
        build_filter_pipelines(filter_list, source)
    message = str(raised.value)
    assert "\n" not in message
    if source is not None:
        assert message.startswith(f"{source}: filter_list")
    return message


@pytest.mark.parametrize(
    ("filter_list", "expected"),
    [
        (single_pipeline({"function": "regx"}), "[0] 'under-test' step 1: unknown filter function 'regx'"),
        (single_pipeline({"function": "zzz"}), "(known: custom, lowercase, majority_vote, map"),
        (single_pipeline(TAKE_FIRST, {"function": "decontaminate", "path": "x"}), "step 2: unsupported"),
        (single_pipeline({"function": "format_span"}), "unsupported filter function 'format_span'"),
        (single_pipeline({"function": "regex_pos"}), "unsupported filter function 'regex_pos'"),
        (single_pipeline({"function": 3}), "'function' must be a filter name"),
        (single_pipeline({"regex_pattern": "x"}), "step 1: missing 'function' (keys: regex_pattern)"),
        (single_pipeline("take_first"), "step 1: expected a mapping"),
        ([{"filter": [TAKE_FIRST]}], "[0]: missing 'name'"),
        ([{"name": "x"}], "[0]: missing 'filter'"),
        ([{"name": "x", "filter": [], "metric": "acc"}], "unknown key 'metric'"),
        ([{"name": "", "filter": []}], "'name' must be a non-empty string"),
        ([{"name": "x", "filter": "take_first"}], "'filter' must be a list"),
        ([{"name": "x", "filter": []}, {"name": "x", "filter": []}], "'x' is used more than once"),
        ("take_first", "expected a non-empty list"),
        ([], "expected a non-empty list"),
        (["none"], "[0]: expected a mapping with 'name' and 'filter'"),
        (
            single_pipeline({"function": "regex", "group": 1}),
            "(regex): unknown argument 'group' (known: regex_pat",
        ),
        (single_pipeline({"function": "regex", "group_select": "-1"}), "'group_select' must be an integer"),
        (single_pipeline({"function": "regex", "group_select": True}), "'group_select' must be an integer"),
        (
            single_pipeline({"function": "regex", "regex_pattern": "(a"}),
            "not a valid regular expression '(a'",
        ),
        (single_pipeline({"function": "regex", "fallback": 0}), "'fallback' must be a string"),
        (
            single_pipeline({"function": "take_first", "k": 1}),
            "(take_first): unknown argument 'k' (it takes none)",
        ),
        (single_pipeline({"function": "take_first_k"}), "(take_first_k): missing argument 'k'"),
        (single_pipeline({"function": "take_first_k", "k": 2.0}), "'k' must be an integer"),
        (single_pipeline({"function": "map", "mapping_dict": ["A"]}), "'mapping_dict' must be a mapping"),
        (single_pipeline({"function": "custom"}), "(custom): missing argument 'filter_fn'"),
        (
            single_pipeline({"function": "custom", "filter_fn": "utils.f"}),
            "'filter_fn' must be a Python function",
        ),
        (
            single_pipeline({"function": "multi_choice_regex", "ignore_case": "yes"}),
            "'ignore_case' must be true",
        ),
        (single_pipeline({"function": "multi_choice_regex", "regexes_to_ignore": ","}), "a list of strings"),
        (
            single_pipeline({"function": "multi_choice_regex", "regexes_to_ignore": ["["]}),
            "'regexes_to_ignore' is not",
        ),
        (single_pipeline({"function": SuffixFilter, "k": 1}), "(SuffixFilter): got an unexpected keyword"),
    ],
)
def test_build_errors_name_the_file_and_the_filter(filter_list: Any, expected: str) -> None:
    assert expected in build_error(filter_list)


def test_build_error_without_a_source_file() -> None:
    assert build_error(single_pipeline({"function": "regx"}), None).startswith("filter_list[0] 'under-test'")


@pytest.mark.parametrize(
    ("steps", "responses", "docs", "expected"),
    [
        ([{"function": "take_first_k", "k": 3}], [["a", "b", "c"], ["a"]], [{}, {}], "at least 3 responses"),
        ([{"function": "regex", "regex_pattern": r"\d", "group_select": 1}], [["1"]], [{}], "out of range"),
        ([{"function": "multi_choice_regex"}], [["A"]], [{"options": []}], "needs a 'choices' list"),
        (
            [{"function": "custom", "filter_fn": lambda values, docs: values[:1]}],
            [["a"], ["b"]],
            [{}, {}],
            "1 values",
        ),
        ([TAKE_FIRST], [["a"]], [{}, {}], "1 response lists for 2 documents"),
    ],
)
def test_apply_errors(
    steps: list[dict[str, Any]], responses: list[list[str]], docs: list[dict[str, Any]], expected: str
) -> None:
    (pipeline,) = build_filter_pipelines(single_pipeline(*steps), SOURCE)
    with pytest.raises(HarnessError) as raised:
        pipeline.apply(responses, docs)
    assert expected in str(raised.value)
