"""Run-time settings lm-eval users type every day (--num_fewshot, --system_instruction, --gen_kwargs) give
the same requests as lm-eval's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.requests import GenerationRequest, LoglikelihoodRequest
from harness.tasks.registry import TaskOverrides, resolve_selection

lm_eval_tasks = pytest.importorskip("lm_eval.tasks")

DOCS = [
    {"q": f"What is {i} plus {i}?", "a": str(2 * i), "options": [str(2 * i), str(i), str(i + 3)]}
    for i in range(8)
]
MC = """task: sums_mc
dataset_path: json
dataset_kwargs: {data_files: {test: docs.jsonl, train: docs.jsonl}}
test_split: test
fewshot_split: train
output_type: multiple_choice
description: "Add the numbers."
doc_to_text: "Q: {{q}}\\nA:"
doc_to_choice: "{{options}}"
doc_to_target: 0
"""
GEN = """task: sums_gen
dataset_path: json
dataset_kwargs: {data_files: {test: docs.jsonl}}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{q}}\\nA:"
doc_to_target: a
generation_kwargs: {until: ["\\n"], max_gen_toks: 32}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    # lm-eval resolves relative data files against the working directory, so both get absolute paths.
    data = str(tmp_path / "docs.jsonl")
    (tmp_path / "mc.yaml").write_text(MC.replace("docs.jsonl", data), encoding="utf-8")
    (tmp_path / "gen.yaml").write_text(GEN.replace("docs.jsonl", data), encoding="utf-8")
    return tmp_path


def _lm_eval_arguments(folder: Path, name: str, **settings: Any) -> list[tuple[Any, ...]]:
    manager = lm_eval_tasks.TaskManager(include_path=str(folder), include_defaults=False)
    task = manager.load([name])["tasks"][name]
    if "num_fewshot" in settings:
        task.set_config(key="num_fewshot", value=settings.pop("num_fewshot"))
    if "gen_kwargs" in settings:
        task.set_config(key="generation_kwargs", value=settings.pop("gen_kwargs"), update=True)
    task.set_fewshot_seed(seed=1234)
    task.build_all_requests(limit=5, rank=0, world_size=1, **settings)
    return [tuple(i.arguments) for i in sorted(task.instances, key=lambda i: (i.doc_id, i.idx))]


def _our_arguments(folder: Path, name: str, overrides: TaskOverrides) -> list[tuple[Any, ...]]:
    (task,) = resolve_selection([name], [folder], overrides).tasks
    arguments: list[tuple[Any, ...]] = []
    for instance in task.build_instances(5):
        for request in instance.requests:
            if isinstance(request, LoglikelihoodRequest):
                arguments.append((request.context, request.continuation))
            else:
                assert isinstance(request, GenerationRequest)
                arguments.append((request.prompt, request.settings.max_tokens, list(request.settings.stop)))
    return arguments


@pytest.mark.parametrize("shots", [0, 2])
@pytest.mark.parametrize("instruction", [None, "You are a careful calculator.", "Be brief.\n"])
def test_few_shot_and_system_instruction_prompts_equal_lm_evals(
    folder: Path, shots: int, instruction: str | None
) -> None:
    theirs = _lm_eval_arguments(folder, "sums_mc", num_fewshot=shots, system_instruction=instruction)
    ours = _our_arguments(folder, "sums_mc", TaskOverrides(num_fewshot=shots, system_instruction=instruction))
    assert ours == theirs


def test_generation_overrides_equal_lm_evals(folder: Path) -> None:
    theirs = [
        (context, kwargs["max_gen_toks"], kwargs["until"])
        for context, kwargs in _lm_eval_arguments(folder, "sums_gen", gen_kwargs={"max_gen_toks": 7})
    ]
    ours = _our_arguments(folder, "sums_gen", TaskOverrides(generation_kwargs={"max_gen_toks": 7}))
    assert ours == theirs
    assert ours[0][1] == 7


GEN_PREFIX_MC = MC.replace("task: sums_mc", "task: sums_prefix").replace(
    "doc_to_target: 0\n", 'doc_to_target: 0\ngen_prefix: "The answer is"\n'
)


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir: Path) -> Any:
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_model_dir), batch_size=1, dtype="float32", device="cpu")


@pytest.mark.parametrize("name", ["sums_mc", "sums_gen", "sums_prefix"])
@pytest.mark.parametrize("multiturn", [False, True])
@pytest.mark.parametrize("instruction", [None, "Be brief."])
def test_chat_template_prompts_equal_lm_evals(
    folder: Path, tiny_lm: Any, tiny_model_dir: Path, name: str, multiturn: bool, instruction: str | None
) -> None:
    from harness.adapters.hf import load_hf_adapter

    (folder / "prefix.yaml").write_text(
        GEN_PREFIX_MC.replace("docs.jsonl", str(folder / "docs.jsonl")), encoding="utf-8"
    )
    settings: dict[str, Any] = {"system_instruction": instruction}
    if name != "sums_gen":
        settings["num_fewshot"] = 2
    theirs = _lm_eval_arguments(
        folder,
        name,
        apply_chat_template=True,
        fewshot_as_multiturn=multiturn,
        chat_template=tiny_lm.apply_chat_template,
        **settings,
    )
    overrides = TaskOverrides(
        num_fewshot=settings.get("num_fewshot"),
        system_instruction=instruction,
        apply_chat_template=True,
        fewshot_as_multiturn=multiturn,
    )
    (task,) = resolve_selection([name], [folder], overrides).tasks
    adapter = load_hf_adapter(str(tiny_model_dir), {})
    ours: list[tuple[Any, ...]] = []
    for instance in task.build_instances(5, adapter.apply_chat_template):
        for request in instance.requests:
            if isinstance(request, LoglikelihoodRequest):
                ours.append((request.context, request.continuation))
            else:
                assert isinstance(request, GenerationRequest)
                ours.append((request.prompt, dict(theirs[len(ours)][1])))
    assert ours == theirs
    # Both sides rendered the tiny model's template (ChatML): the system turn is the instruction, then the
    # task's description (sums_gen has none); without either the prompt opens with the user turn.
    description = None if name == "sums_gen" else "Add the numbers."
    system = "\n\n".join(part for part in (instruction, description) if part)
    opening = f"<|im_start|>system\n{system}<|im_end|>\n" if system else "<|im_start|>user\n"
    assert str(ours[0][0]).startswith(opening), ours[0][0]


def test_scored_chat_prompts_need_a_model_that_can_render_them(folder: Path) -> None:
    from harness.errors import HarnessError

    (task,) = resolve_selection(["sums_mc"], [folder], TaskOverrides(apply_chat_template=True)).tasks
    with pytest.raises(HarnessError, match="asks for a chat template"):
        task.build_instances(2, None)


def test_a_gold_answer_outside_the_choices_scores_zero_as_in_lm_eval(tmp_path: Path) -> None:
    import harness

    docs = [{"q": "a?", "gold": 0}, {"q": "b?", "gold": 7}, {"q": "c?", "gold": "maybe"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (tmp_path / "t.yaml").write_text(
        "task: odd_gold\ndataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{q}}"\ndoc_to_choice: ["yes", "no"]\ndoc_to_target: gold\n',
        encoding="utf-8",
    )
    report = harness.evaluate("mock:0", [str(tmp_path / "t.yaml")], write=False, use_cache=False)
    (evaluation,) = report.evaluations
    assert [instance.gold for instance in evaluation.instances] == [0, -100, -100]
    per_document = evaluation.statistics["acc"][:, 0]
    assert per_document[1] == per_document[2] == 0.0
