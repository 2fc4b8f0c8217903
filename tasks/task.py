"""A task turns documents into requests and request results into per-sample outcomes.

Prompt construction (description, few-shot examples, delimiters, few-shot sampling order) follows
lm-evaluation-harness 0.4.13 exactly, so the same YAML gives the same prompts and hence the same numbers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from harness.errors import HarnessError
from harness.metrics import Metric, SampleOutcome, default_metrics, get_metric
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
    Result,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)
from harness.tasks import templates
from harness.tasks.config import TaskConfig
from harness.tasks.dataset import Document, load_split

# lm-eval seeds its few-shot sampler with this value unless told otherwise.
FEWSHOT_SEED = 1234


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


class Task:
    def __init__(self, config: TaskConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.task

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def output_type(self) -> str:
        return self.config.output_type

    @cached_property
    def metrics(self) -> tuple[Metric, ...]:
        specs = self.config.metric_list
        if not specs:
            return tuple(get_metric(name) for name in default_metrics(self.output_type))
        chosen = []
        names = [spec.name for spec in specs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            # Per-sample statistics are stored by metric name, so one name can hold one setting only.
            raise HarnessError(f"task '{self.name}' lists metric '{repeated[0]}' more than once")
        for spec in specs:
            metric = get_metric(spec.name, **dict(spec.settings))
            if self.output_type not in metric.output_types:
                raise HarnessError(
                    f"metric '{spec.name}' does not fit task '{self.name}' (output_type {self.output_type})"
                )
            chosen.append(metric)
        return tuple(chosen)

    @cached_property
    def documents(self) -> list[Document]:
        documents = load_split(self.config, self.config.eval_split)
        if not documents:
            raise HarnessError(f"task '{self.name}' has no documents in split '{self.config.eval_split}'")
        return documents

    def _fewshot_pool(self) -> list[Document]:
        config = self.config
        split = config.fewshot_split or config.training_split or config.validation_split or config.test_split
        if split is None:
            raise HarnessError(f"task '{self.name}' asks for few-shot examples but names no split for them")
        pool = load_split(config, split)
        # One spare document is needed only when the evaluated document itself may be drawn.
        needed = config.num_fewshot + (1 if config.fewshot_split == config.test_split else 0)
        if len(pool) < needed:
            raise HarnessError(f"task '{self.name}' has too few documents for {config.num_fewshot}-shot")
        return pool

    # -- document fields ---------------------------------------------------------------------------

    def _text(self, doc: Mapping[str, Any]) -> str:
        value = templates.doc_to_text(self.config.doc_to_text, doc, self.config.doc_to_choice is not None)
        if not isinstance(value, str):
            raise HarnessError(f"task '{self.name}': doc_to_text must give text, got {value!r}")
        return value

    def _choices(self, doc: Mapping[str, Any]) -> list[str]:
        if self.config.doc_to_choice is None:
            raise HarnessError(f"task '{self.name}' is multiple_choice but has no doc_to_choice")
        return templates.doc_to_choice(self.config.doc_to_choice, doc)

    def _target(self, doc: Mapping[str, Any]) -> Any:
        return templates.doc_to_target(self.config.doc_to_target, doc, self.config.doc_to_choice is not None)

    def _answer_text(self, doc: Mapping[str, Any]) -> str:
        """The answer as it appears in a few-shot example."""
        target = self._target(doc)
        if self.config.doc_to_choice is not None and isinstance(target, int):
            return self._choices(doc)[target]
        if isinstance(target, list):
            return str(target[0])
        return str(target)

    def _gold_index(self, doc: Mapping[str, Any], choices: Sequence[str]) -> int:
        target = self._target(doc)
        if isinstance(target, int) and 0 <= target < len(choices):
            return target
        if isinstance(target, str) and target in choices:
            return list(choices).index(target)
        raise HarnessError(f"task '{self.name}': target {target!r} is not one of the choices {list(choices)}")

    # -- prompts -------------------------------------------------------------------------------------

    def _context(self, doc: Document, rng: random.Random, pool: list[Document] | None) -> str:
        config = self.config
        description = templates.doc_to_text(config.description, doc, False) if config.description else ""
        parts = [str(description)]
        if config.num_fewshot > 0 and pool is not None:
            if config.fewshot_split == config.test_split:
                # Draw one extra and drop the evaluated document itself, as lm-eval does.
                drawn = [example for example in rng.sample(pool, config.num_fewshot + 1) if example != doc]
                examples = drawn[: config.num_fewshot]
                if len(examples) < config.num_fewshot:
                    examples = rng.sample([e for e in pool if e != doc], config.num_fewshot)
            else:
                examples = rng.sample(pool, config.num_fewshot)
            for example in examples:
                answer = self._answer_text(example)
                delimiter = config.target_delimiter if answer != "" else ""
                parts.append(self._text(example) + delimiter + answer + config.fewshot_delimiter)
        parts.append(self._text(doc))
        return "".join(parts)

    def _instance(self, doc_id: int, doc: Document, context: str) -> TaskInstance:
        config = self.config
        group = None
        if config.group_field is not None:
            if config.group_field not in doc:
                raise HarnessError(
                    f"task '{self.name}': document {doc_id} has no field '{config.group_field}'"
                )
            value = doc[config.group_field]
            group = None if value is None else str(value)
        if config.output_type == "multiple_choice":
            choices = self._choices(doc)
            gold = self._gold_index(doc, choices)
            requests: tuple[Request, ...] = tuple(
                LoglikelihoodRequest(context, config.target_delimiter + choice) for choice in choices
            )
            return TaskInstance(doc_id, context, choices[gold], requests, tuple(choices), gold, group=group)
        if config.output_type == "loglikelihood":
            target = str(self._target(doc))
            return TaskInstance(
                doc_id, context, target, (LoglikelihoodRequest(context, target),), group=group
            )
        if config.output_type == "loglikelihood_rolling":
            target = str(self._target(doc))
            return TaskInstance(doc_id, "", target, (RollingLoglikelihoodRequest(target),), group=group)
        references = self._references(doc)
        prompt: str | tuple[ChatMessage, ...] = context
        if config.apply_chat_template:
            prompt = (ChatMessage("user", context),)
        request = GenerationRequest(prompt, self._generation_settings())
        return TaskInstance(doc_id, context, references[0], (request,), references=references, group=group)

    def _references(self, doc: Mapping[str, Any]) -> tuple[str, ...]:
        target = self._target(doc)
        if self.config.doc_to_choice is not None and isinstance(target, int):
            return (self._choices(doc)[target],)
        if isinstance(target, list):
            return tuple(str(item) for item in target)
        return (str(target),)

    def _generation_settings(self) -> GenerationSettings:
        kwargs = dict(self.config.generation_kwargs)
        max_tokens = kwargs.get("max_gen_toks", kwargs.get("max_new_tokens", 256))
        temperature = float(kwargs.get("temperature", 0.0))
        return GenerationSettings(
            max_tokens=int(max_tokens),
            stop=tuple(str(stop) for stop in kwargs.get("until", ())),
            do_sample=bool(kwargs.get("do_sample", False)) and temperature > 0,
            temperature=temperature,
            top_p=float(kwargs.get("top_p", 1.0)),
            seed=kwargs.get("seed"),
        )

    def build_instances(self, limit: int | None = None) -> list[TaskInstance]:
        if limit is not None and limit <= 0:
            raise HarnessError("--limit must be a positive number of documents")
        documents = self.documents[:limit] if limit is not None else self.documents
        pool = self._fewshot_pool() if self.config.num_fewshot > 0 else None
        rng = random.Random(FEWSHOT_SEED)
        instances = []
        for doc_id, doc in enumerate(documents):
            context = self._context(doc, rng, pool) if self.output_type != "loglikelihood_rolling" else ""
            instances.append(replace(self._instance(doc_id, doc, context), doc=doc))
        return instances

    # -- results -------------------------------------------------------------------------------------

    def outcome(self, instance: TaskInstance, results: Sequence[Result]) -> SampleOutcome:
        kind = self.output_type
        if kind == "multiple_choice":
            lls = [result.logprob for result in results if isinstance(result, LoglikelihoodResult)]
            return SampleOutcome(
                output_type=kind,
                target=instance.target,
                gold=instance.gold,
                choices=instance.choices,
                choice_logprobs=tuple(lls),
            )
        (result,) = results
        if isinstance(result, LoglikelihoodResult):
            return SampleOutcome(
                output_type=kind,
                target=instance.target,
                logprob=result.logprob,
                is_greedy=result.is_greedy,
                num_tokens=result.num_tokens,
            )
        if isinstance(result, RollingLoglikelihoodResult):
            return SampleOutcome(
                output_type=kind, target=instance.target, logprob=result.logprob, num_tokens=result.num_tokens
            )
        if isinstance(result, GenerationResult):
            return SampleOutcome(
                output_type=kind,
                target=instance.target,
                references=instance.references,
                prediction=result.text,
            )
        raise TypeError(f"unexpected result {result!r}")
