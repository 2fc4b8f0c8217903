"""Evaluating the in-memory model from a training loop: the transformers callback and the plain hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

import harness.api
from harness.errors import HarnessError
from harness.store import ResultStore
from harness.training import EvaluationHook, HarnessCallback

TASK = "harness_reading_mc"


@pytest.fixture
def no_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model from disk during these tests would mean the in-memory model was not used."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the in-memory model must be evaluated as it is, not reloaded")

    monkeypatch.setattr(harness.api, "load_adapter", refuse)


def _dataset(tokenizer: Any, count: int = 8) -> list[dict[str, torch.Tensor]]:
    texts = [f"Example {i}: the quick brown fox jumps over the lazy dog." for i in range(count)]
    rows = []
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=16, padding="max_length", return_tensors="pt")
        input_ids = ids["input_ids"][0]
        rows.append({"input_ids": input_ids, "attention_mask": ids["attention_mask"][0], "labels": input_ids})
    return rows


def test_trainer_callback_evaluates_each_save_in_memory(
    tmp_path: Path, tiny_model_dir: Path, no_reload: None
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    store = tmp_path / "store"
    callback = HarnessCallback(TASK, store=store, limit=2, bootstrap_resamples=0)
    args = TrainingArguments(
        output_dir=str(tmp_path / "sft-tiny"),
        max_steps=2,
        save_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-2,  # large, so every step visibly changes the weights
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
        save_only_model=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_dataset(tokenizer),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()
    runs = ResultStore(store).runs()
    assert list(runs["step"]) == [1, 2]
    assert set(runs["experiment"]) == {"sft-tiny"}  # the output folder's name
    assert runs["model_fingerprint"].nunique() == 2  # the weights of the model being trained
    assert [report.run_id for report in callback.reports] == list(runs["run_id"])
    assert {score.task for report in callback.reports for score in report.scores} == {TASK}
    assert (tmp_path / "sft-tiny" / "checkpoint-2").is_dir()  # the trainer's own saving is untouched


def test_plain_hook_restores_training_mode(tmp_path: Path, tiny_model_dir: Path, no_reload: None) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    hook = EvaluationHook([TASK], tokenizer=tokenizer, experiment="loop", store=tmp_path / "s", limit=2)
    model.train()
    report = hook(model, 10)
    assert model.training
    model.eval()
    hook(model, 20)
    assert not model.training
    runs = ResultStore(tmp_path / "s").runs()
    assert list(runs["step"]) == [10, 20] and set(runs["experiment"]) == {"loop"}
    assert runs["run_id"].iloc[0] == report.run_id and len(hook.reports) == 2
    with pytest.raises(HarnessError, match="needs its tokenizer"):
        EvaluationHook(TASK, store=tmp_path / "s")(model, 30)
