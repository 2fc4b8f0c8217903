"""From model answers to per-document outcomes: response filters, a task's own `process_results`, and the
metrics a task reports.

A task without a `filter_list` has one pipeline, "none", and its metrics keep their plain names. A task with
filters (lm-eval's gsm8k: "strict-match" and "flexible-extract") scores every metric once per pipeline, named
`metric,filter` as lm-eval names them. Filters act on generated text; for the other output types every
pipeline sees the same log-likelihoods, as lm-eval's take_first leaves them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.metrics import METRICS, Metric, SampleOutcome, default_metrics, get_metric
from harness.metrics.items import FilteredMetric, ItemMetric, default_item_aggregation
from harness.requests import (
    GenerationResult,
    LoglikelihoodResult,
    Request,
    Result,
    RollingLoglikelihoodResult,
)
from harness.tasks.config import TaskConfig
from harness.tasks.filters import FilterPipeline

__all__ = ["TaskInstance", "score_instances", "task_metrics"]


@dataclass(frozen=True)
class TaskInstance:
    """One evaluated document: its prompt, its requests and what a correct answer looks like."""

    doc_id: int
    prompt: str
    target: str
    requests: tuple[Request, ...]
    choices: tuple[str, ...] = ()
    gold: int | None = None
    references: tuple[str, ...] = ()
    group: str | None = None
    # The source document, for scorers that need more than the answer (fairness probes, say).
    doc: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _item_metric(config: TaskConfig, name: str, aggregation: Any, higher_is_better: bool | None) -> Metric:
    if aggregation is not None and not isinstance(aggregation, str):
        raise HarnessError(f"task '{config.task}': metric '{name}': a !function aggregation is not supported")
    if higher_is_better is None:
        higher_is_better = METRICS.get(name)().higher_is_better if name in METRICS else True
    return ItemMetric(name, aggregation or default_item_aggregation(name), higher_is_better)


def _base_metrics(config: TaskConfig) -> list[Metric]:
    specs = config.metric_list
    if config.process_results is not None:
        if not specs:
            return [_item_metric(config, name, None, None) for name in default_metrics(config.output_type)]
        return [_item_metric(config, spec.name, spec.aggregation, spec.higher_is_better) for spec in specs]
    if not specs:
        return [get_metric(name) for name in default_metrics(config.output_type)]
    chosen = []
    for spec in specs:
        if spec.aggregation is not None and not isinstance(spec.aggregation, str):
            # lm-eval would hand the per-document items to that function (super_glue's cb: a macro F1);
            # the built-in metric would silently report its own aggregate instead.
            raise HarnessError(
                f"task '{config.task}': metric '{spec.name}': a !function aggregation is not supported"
            )
        metric = get_metric(spec.name, **dict(spec.settings))
        if config.output_type not in metric.output_types:
            raise HarnessError(
                f"metric '{spec.name}' does not fit task '{config.task}' (output_type {config.output_type})"
            )
        chosen.append(metric)
    return chosen


def task_metrics(config: TaskConfig, filter_names: Sequence[str]) -> tuple[Metric, ...]:
    base = _base_metrics(config)
    names = [metric.name for metric in base]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        # Per-sample statistics are stored by metric name, so one name can hold one setting only.
        raise HarnessError(f"task '{config.task}' lists metric '{repeated[0]}' more than once")
    if tuple(filter_names) == ("none",):
        return tuple(base)
    return tuple(FilteredMetric(metric, name) for name in filter_names for metric in base)


def filter_of(metric: Metric) -> str:
    return metric.filter_name if isinstance(metric, FilteredMetric) else "none"


def _process_results(config: TaskConfig, doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    if config.process_results is None:
        return {}
    try:
        values = config.process_results(doc, list(results))
    except Exception as error:  # the task's own code failed
        raise HarnessError(
            f"task '{config.task}': process_results failed: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(values, Mapping):
        raise HarnessError(f"task '{config.task}': process_results must return a mapping of metric to value")
    return dict(values)


def _lm_eval_results(results: Sequence[Result]) -> list[Any]:
    """Answers in the shape lm-eval hands to process_results: (logprob, is_greedy) pairs or logprobs."""
    shaped: list[Any] = []
    for result in results:
        if isinstance(result, LoglikelihoodResult):
            shaped.append((result.logprob, result.is_greedy))
        elif isinstance(result, RollingLoglikelihoodResult):
            shaped.append(result.logprob)
        else:
            raise TypeError(f"unexpected result {result!r}")
    return shaped


def _scored_outcome(config: TaskConfig, instance: TaskInstance, results: Sequence[Result]) -> SampleOutcome:
    kind = config.output_type
    values = _process_results(config, instance.doc, _lm_eval_results(results))
    if kind == "multiple_choice":
        return SampleOutcome(
            output_type=kind,
            target=instance.target,
            gold=instance.gold,
            choices=instance.choices,
            choice_logprobs=tuple(r.logprob for r in results if isinstance(r, LoglikelihoodResult)),
            values=values,
        )
    (result,) = results
    if isinstance(result, LoglikelihoodResult):
        return SampleOutcome(
            output_type=kind,
            target=instance.target,
            logprob=result.logprob,
            is_greedy=result.is_greedy,
            num_tokens=result.num_tokens,
            values=values,
        )
    if isinstance(result, RollingLoglikelihoodResult):
        return SampleOutcome(
            output_type=kind,
            target=instance.target,
            logprob=result.logprob,
            num_tokens=result.num_tokens,
            values=values,
        )
    raise TypeError(f"unexpected result {result!r}")


def _generation_outcomes(
    config: TaskConfig,
    pipeline: FilterPipeline,
    instances: Sequence[TaskInstance],
    results: Sequence[Sequence[Result]],
) -> tuple[SampleOutcome, ...]:
    responses = [[r.text for r in answers if isinstance(r, GenerationResult)] for answers in results]
    docs = [instance.doc for instance in instances]
    try:
        filtered = pipeline.apply(responses, docs)
    except HarnessError:
        raise
    except Exception as error:  # a custom filter's own code failed
        raise HarnessError(
            f"task '{config.task}': filter '{pipeline.name}' failed: {type(error).__name__}: {error}"
        ) from None
    outcomes = []
    for instance, response in zip(instances, filtered, strict=True):
        outcomes.append(
            SampleOutcome(
                output_type="generate_until",
                target=instance.target,
                references=instance.references,
                prediction=response if isinstance(response, str) else str(response),
                values=_process_results(config, instance.doc, [response]),
            )
        )
    return tuple(outcomes)


def score_instances(
    config: TaskConfig,
    pipelines: Sequence[FilterPipeline],
    instances: Sequence[TaskInstance],
    results: Sequence[Sequence[Result]],
) -> dict[str, tuple[SampleOutcome, ...]]:
    """Each pipeline's outcomes of every document, in instance order."""
    if config.output_type == "generate_until":
        return {
            pipeline.name: _generation_outcomes(config, pipeline, instances, results)
            for pipeline in pipelines
        }
    outcomes = tuple(
        _scored_outcome(config, instance, answers)
        for instance, answers in zip(instances, results, strict=True)
    )
    return {pipeline.name: outcomes for pipeline in pipelines}
