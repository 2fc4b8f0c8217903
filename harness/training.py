"""Evaluate the in-memory model from inside a training loop: a plain hook and a transformers callback.

Nothing is saved or reloaded: the model object being trained is scored as it is, and put back in
training mode afterwards. Each call stores one run with the experiment name and the training step,
so `harness gate`, `harness compare` and the leaderboard's trends see the series like any other.

In distributed training (DDP) every rank calls the hook at the same step: the ranks evaluate together,
each serving its share of the requests, every rank gets the scores, and rank 0 alone stores the run
(harness.distributed). A model sharded by FSDP2 is served by every rank in lockstep instead (each
forward gathers the weights from all ranks); FSDP1 wrappers are refused with an error. The callback also
logs the scores through the trainer's own `log`, as `harness/<task>/<metric>`, so whatever `report_to`
names (TensorBoard, W&B, MLflow) shows them at that step; for that the callback needs its trainer:
`HarnessCallback(...).attach(trainer)`.

    hook = EvaluationHook(["harness_reading_mc"], tokenizer=tokenizer, experiment="sft-v2")
    for step in range(...):
        ...
        if step % 1000 == 0:
            hook(model, step)

    trainer = Trainer(...)
    HarnessCallback(["harness_reading_mc"], experiment="sft-v2").attach(trainer)

Importing this module imports transformers (for `TrainerCallback`); `harness` itself does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from harness.api import EvaluationReport, evaluate
from harness.distributed import current_world, refuse_fsdp1
from harness.errors import HarnessError

__all__ = ["EvaluationHook", "HarnessCallback", "score_logs"]


def _unwrap(model: Any) -> Any:
    """The plain transformers model inside DistributedDataParallel or torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif hasattr(model, "module") and hasattr(model.module, "config"):  # DDP, DataParallel
            model = model.module
        else:
            return model


def score_logs(report: EvaluationReport) -> dict[str, float]:
    """A run's scores as a trainer logs them: `harness/<task>/<metric>`, leaving out NaN values."""
    return {
        f"harness/{score.task}/{score.metric}": float(score.value)
        for score in report.scores
        if score.value is not None and score.value == score.value  # NaN: nothing to plot
    }


class EvaluationHook:
    """Call with (model, step) wherever a training loop wants scores; returns the stored run's report.

    Under torch.distributed call it on every rank: the ranks share the work and rank 0 stores the run."""

    def __init__(
        self,
        tasks: str | Sequence[str],
        *,
        tokenizer: Any = None,
        experiment: str | None = None,
        store: str | Path | None = None,
        limit: int | None = None,
        model_args: Mapping[str, str] | None = None,
        include_paths: Sequence[str | Path] = (),
        seed: int = 0,
        bootstrap_resamples: int = 1000,
    ) -> None:
        self.tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        if not self.tasks:
            raise HarnessError("EvaluationHook needs at least one task")
        self.tokenizer = tokenizer
        self.experiment = experiment
        self.store = store
        self.limit = limit
        self.model_args = dict(model_args or {})
        self.include_paths = tuple(include_paths)
        self.seed = seed
        self.bootstrap_resamples = bootstrap_resamples
        self.reports: list[EvaluationReport] = []

    def __call__(
        self, model: Any, step: int | None, *, tokenizer: Any = None, experiment: str | None = None
    ) -> EvaluationReport:
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is None:
            raise HarnessError("evaluating an in-memory model needs its tokenizer")
        # Before unwrapping: FSDP1's root wrapper has a `module` that _unwrap would peel off.
        refuse_fsdp1(model)
        model = _unwrap(model)
        # The adapter switches the model to eval mode (no dropout); training must resume as it was.
        was_training = bool(getattr(model, "training", False))
        try:
            report = evaluate(
                model,
                self.tasks,
                tokenizer=tokenizer,
                model_args=self.model_args,
                include_paths=self.include_paths,
                store=self.store,
                experiment=experiment if experiment is not None else self.experiment,
                step=step,
                limit=self.limit,
                seed=self.seed,
                bootstrap_resamples=self.bootstrap_resamples,
                show_progress=False,
            )
        finally:
            if was_training:
                model.train()
        self.reports.append(report)
        return report


class HarnessCallback(TrainerCallback):
    """Evaluates the trainer's in-memory model at every checkpoint save (`on_save`).

    In distributed training every rank takes part and rank 0 stores the run; the experiment defaults to
    the run name, else the name of the trainer's output folder. Attached to its trainer (`attach`), the
    callback logs the scores through `Trainer.log`; otherwise they only join `state.log_history`.
    """

    def __init__(
        self,
        tasks: str | Sequence[str],
        *,
        tokenizer: Any = None,
        experiment: str | None = None,
        store: str | Path | None = None,
        limit: int | None = None,
        model_args: Mapping[str, str] | None = None,
        include_paths: Sequence[str | Path] = (),
        seed: int = 0,
        bootstrap_resamples: int = 1000,
    ) -> None:
        self.hook = EvaluationHook(
            tasks,
            tokenizer=tokenizer,
            experiment=experiment,
            store=store,
            limit=limit,
            model_args=model_args,
            include_paths=include_paths,
            seed=seed,
            bootstrap_resamples=bootstrap_resamples,
        )

        self.trainer: Any = None

    @property
    def reports(self) -> list[EvaluationReport]:
        return self.hook.reports

    def attach(self, trainer: Any) -> HarnessCallback:
        """Add this callback to `trainer` (once) and log the scores through its `log` and `report_to`."""
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        self.trainer = trainer
        return self

    def _experiment(self, args: TrainingArguments) -> str:
        if self.hook.experiment is not None:
            return self.hook.experiment
        run_name = getattr(args, "run_name", None)
        output_dir = getattr(args, "output_dir", None)
        # Recent transformers default run_name to output_dir; the folder's name reads better.
        if run_name and run_name != output_dir:
            return str(run_name)
        return Path(str(output_dir or "training")).name

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if current_world() is None and not state.is_world_process_zero:
            return control  # several processes but no process group to evaluate together in
        model = kwargs.get("model")
        if model is None:
            raise HarnessError("HarnessCallback.on_save got no model from the trainer")
        tokenizer = self.hook.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")
        report = self.hook(model, state.global_step, tokenizer=tokenizer, experiment=self._experiment(args))
        logs = score_logs(report)
        if self.trainer is not None and self.trainer.state is state:
            # Every rank logs, as the trainer itself does; its reporting callbacks write on rank 0 only.
            self.trainer.log(logs)
        else:
            state.log_history.append({**logs, "step": state.global_step})
        return control
