"""Evaluating the in-memory model from a training loop: the transformers callback and the plain hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

import harness.api
from harness.adapters.sharded import is_sharded_model, uses_fsdp1
from harness.errors import HarnessError
from harness.store import ResultStore
from harness.training import EvaluationHook, HarnessCallback

TASK = "harness_reading_mc"
REFUSED = r"^FSDP1 \(FullyShardedDataParallel\) models are not supported: "


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
    # Not attached to its trainer, the callback still leaves the scores in the trainer's log history.
    logged = [row["step"] for row in trainer.state.log_history if f"harness/{TASK}/acc" in row]
    assert logged == [1, 2]


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


def test_fsdp1_wrapped_models_are_refused_before_any_forward(
    tmp_path: Path, tiny_model_dir: Path, no_reload: None
) -> None:
    # Real FSDP1 wrappers cannot be built without a process group, so these models carry FSDP1's mark by
    # hand: the `_fsdp_wrapped_module` submodule. FSDP2 keeps the model's classes and is evaluated (below).
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not is_sharded_model(model) and not uses_fsdp1(model)

    def forward_called(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an FSDP1 model must be refused before its first forward")

    class Fsdp1Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._fsdp_wrapped_module = inner

        @property
        def module(self) -> torch.nn.Module:  # as FSDP1's: the hook's unwrapping would peel it off
            return self._fsdp_wrapped_module

    model.forward = forward_called
    hook = EvaluationHook([TASK], tokenizer=tokenizer, store=tmp_path / "s", limit=2)
    root_wrapped = Fsdp1Wrapper(model)
    assert is_sharded_model(root_wrapped) and uses_fsdp1(root_wrapped)
    with pytest.raises(HarnessError, match=REFUSED):
        hook(root_wrapped, 1)
    model.model.layers[0] = Fsdp1Wrapper(model.model.layers[0])  # one layer wrapped, as auto-wrapping does
    with pytest.raises(HarnessError, match=REFUSED):
        hook(model, 2)
    with pytest.raises(HarnessError, match=REFUSED):
        harness.api.evaluate(model, TASK, tokenizer=tokenizer, store=tmp_path / "s", limit=2)
    assert not (tmp_path / "s" / "_harness_store.json").exists()

    import torch.distributed.fsdp as fsdp

    if not hasattr(fsdp, "FSDPModule"):
        return  # a torch before FSDP2
    layer = torch.nn.Linear(2, 2)
    layer.__class__ = type("FSDPLinear", (fsdp.FSDPModule, torch.nn.Linear), {})
    assert is_sharded_model(torch.nn.Sequential(layer)) and not is_sharded_model(torch.nn.Linear(2, 2))
    assert not uses_fsdp1(torch.nn.Sequential(layer))


# Run by torchrun on two CPU ranks: a model whose every decoder layer and root are sharded by FSDP2.
FSDP2_EVALUATION_SCRIPT = """
import json
import sys

import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.training import EvaluationHook

model_dir, store, tasks, limit = sys.argv[1:5]
dist.init_process_group("gloo")
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
for layer in model.model.layers:
    fully_shard(layer)
fully_shard(model)
weight = model.model.layers[0].self_attn.q_proj.weight
# One request per forward call, so that serving shares (5 documents split 3/2) would give the ranks
# different numbers of forward calls, which FSDP's all-gathers cannot take: every rank serves them all.
hook = EvaluationHook(tasks.split(","), tokenizer=tokenizer, store=store, limit=int(limit),
                      bootstrap_resamples=0, model_args={"batch_size": "1"})
report = hook(model, 7)
print(json.dumps({
    "stored": report.store is not None,
    "scores": {f"{s.task}/{s.metric}": s.value for s in report.scores},
    "local_rows": weight.to_local().shape[0],
    "rows": weight.shape[0],
}))
dist.barrier()
dist.destroy_process_group()
"""
FSDP2_TASKS = "harness_reading_mc,harness_prose_ppl,harness_facts_qa"


def test_fsdp2_model_on_two_ranks_scores_and_generates_as_one_process(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Every rank serves every request in lockstep (a rank serving a smaller share would leave the
    other waiting in an all-gather): the scores and generations of the unsharded model, one run."""
    import json
    import shutil
    import subprocess
    import sys

    script = tmp_path / "evaluate_fsdp2.py"
    script.write_text(FSDP2_EVALUATION_SCRIPT)
    store, logs, limit = tmp_path / "store", tmp_path / "logs", 5
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "--redirects", "3", "--log-dir", str(logs)]
    finished = subprocess.run(
        [*command, str(script), str(tiny_model_dir), str(store), FSDP2_TASKS, str(limit)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:] + "".join(
        path.read_text()[-2000:] for path in logs.glob("*/attempt_0/*/stderr.log")
    )
    printed = [
        json.loads((next(logs.glob(f"*/attempt_0/{rank}/stdout.log"))).read_text().strip().splitlines()[-1])
        for rank in range(2)
    ]
    assert [entry["stored"] for entry in printed] == [True, False]
    assert all(entry["local_rows"] < entry["rows"] for entry in printed)  # the weights really are sharded
    assert printed[0]["scores"] == printed[1]["scores"]

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    whole = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    reference = harness.api.evaluate(
        whole,
        FSDP2_TASKS,
        tokenizer=tokenizer,
        limit=limit,
        store=tmp_path / "reference",
        bootstrap_resamples=0,
    )
    expected = {f"{score.task}/{score.metric}": score.value for score in reference.scores}
    assert printed[0]["scores"].keys() == expected.keys()
    for key, value in expected.items():
        assert printed[0]["scores"][key] == pytest.approx(value, rel=1e-6), key

    runs = ResultStore(store).runs()
    assert list(runs["step"]) == [7]  # one run, stored by rank 0
    sharded_samples = ResultStore(store).samples(task="harness_facts_qa")
    whole_samples = ResultStore(tmp_path / "reference").samples(task="harness_facts_qa")
    assert list(sharded_samples["prediction"]) == list(whole_samples["prediction"])
    assert json.loads(runs["provenance"].iloc[0])["sharded_model"] is True


# Run by torchrun on two CPU ranks: a DDP Trainer whose callback logs through the trainer to TensorBoard.
DDP_TRAINING_SCRIPT = """
import json
import sys

import torch.distributed as dist
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from harness.training import HarnessCallback

model_dir, store, output_dir = sys.argv[1:4]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
rows = []
for i in range(8):
    text = f"Example {i}: the quick brown fox."
    ids = tokenizer(text, max_length=16, padding="max_length", truncation=True, return_tensors="pt")
    rows.append({"input_ids": ids["input_ids"][0], "attention_mask": ids["attention_mask"][0],
                 "labels": ids["input_ids"][0]})
args = TrainingArguments(
    output_dir=output_dir, max_steps=2, save_steps=1, per_device_train_batch_size=2, learning_rate=1e-2,
    report_to=["tensorboard"], use_cpu=True, ddp_backend="gloo", disable_tqdm=True, logging_steps=1,
    save_only_model=True,
)
trainer = Trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
callback = HarnessCallback("harness_reading_mc", store=store, limit=4, bootstrap_resamples=0).attach(trainer)
trainer.train()
assert dist.is_initialized() and dist.get_world_size() == 2
print(json.dumps({
    "rank": dist.get_rank(),
    "steps": [row["step"] for row in trainer.state.log_history if "harness/harness_reading_mc/acc" in row],
    "stored": [report.store is not None for report in callback.reports],
    "scores": [{s.metric: s.value for s in report.scores} for report in callback.reports],
}))
# As a DDP script ends: leaving with the process group alive lets gloo's threads abort at exit.
dist.barrier()
dist.destroy_process_group()
"""


def test_ddp_trainer_on_two_ranks_stores_one_run_per_save_and_logs_to_tensorboard(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    script = tmp_path / "train_ddp.py"
    script.write_text(DDP_TRAINING_SCRIPT)
    store, output_dir, events = tmp_path / "store", tmp_path / "sft-ddp", tmp_path / "tensorboard"
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    finished = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            "--redirects",
            "3",
            "--log-dir",
            str(tmp_path / "logs"),
            *[str(script), str(tiny_model_dir), str(store), str(output_dir)],
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TENSORBOARD_LOGGING_DIR": str(events)},
    )
    logs = {
        path.parent.name: path.read_text() for path in (tmp_path / "logs").glob("*/attempt_0/*/stdout.log")
    }
    assert finished.returncode == 0, finished.stderr[-3000:] + "".join(
        path.read_text()[-2000:] for path in (tmp_path / "logs").glob("*/attempt_0/*/stderr.log")
    )
    reports = [json.loads(logs[str(rank)].strip().splitlines()[-1]) for rank in range(2)]

    runs = ResultStore(store).runs()
    assert list(runs["step"]) == [1, 2]  # one run per save, not one per rank
    assert set(runs["experiment"]) == {"sft-ddp"}
    assert [report["stored"] for report in reports] == [[True, True], [False, False]]
    assert reports[0]["scores"] == reports[1]["scores"]  # every rank gets the scores of the run
    assert reports[0]["steps"] == [1, 2]

    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    tags = [tag for tag in accumulator.Tags()["scalars"] if "harness/harness_reading_mc/" in tag]
    assert {tag.rsplit("/", 1)[1] for tag in tags} == {"acc", "acc_norm"}
    for tag in tags:
        metric = tag.rsplit("/", 1)[1]
        written = [(event.step, event.value) for event in accumulator.Scalars(tag)]
        expected = [(step, report[metric]) for step, report in zip([1, 2], reports[0]["scores"], strict=True)]
        assert [step for step, _ in written] == [1, 2]
        assert all(abs(value - want) < 1e-6 for (_, value), (_, want) in zip(written, expected, strict=True))
    stored = ResultStore(store).scores()
    assert sorted(stored["value"]) == sorted(v for report in reports[0]["scores"] for v in report.values())
