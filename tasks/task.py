"""A task turns documents into requests and request results into per-sample outcomes.

Prompt construction (description, few-shot examples, delimiters, few-shot sampling order) follows
lm-evaluation-harness 0.4.13 exactly, so the same YAML gives the same prompts and hence the same numbers.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any

from harness.errors import HarnessError, HarnessWarning
from harness.metrics import Metric, SampleOutcome
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationSettings,
    LoglikelihoodRequest,
    Request,
    Result,
    RollingLoglikelihoodRequest,
)
from harness.tasks import prompts, templates
from harness.tasks.config import DocumentHook, TaskConfig, Template
from harness.tasks.dataset import Document, apply_process_docs, load_split
from harness.tasks.filters import FilterPipeline, build_filter_pipelines
from harness.tasks.hub import load_hub_split
from harness.tasks.scoring import TaskInstance, score_instances, task_metrics

# lm-eval seeds its few-shot sampler with this value unless told otherwise.
FEWSHOT_SEED = 1234
# lm-eval's gold index for an answer that is not among the choices: never the model's pick, so scored 0.
UNMATCHED_GOLD = -100

__all__ = ["FEWSHOT_SEED", "Task", "TaskInstance"]


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
    def filters(self) -> tuple[FilterPipeline, ...]:
        return build_filter_pipelines(
            list(self.config.filter_list) if self.config.filter_list is not None else None, self.config.source
        )

    @cached_property
    def metrics(self) -> tuple[Metric, ...]:
        """Every metric the task reports: one per metric and response filter (lm-eval's `metric,filter`)."""
        return task_metrics(self.config, tuple(pipeline.name for pipeline in self.filters))

    # -- documents -----------------------------------------------------------------------------------

    def _split(self, split: str, process_docs: DocumentHook | None) -> list[Document]:
        config = self.config
        if config.data_files is None:
            documents = load_hub_split(
                config.dataset_path, config.dataset_name, config.dataset_kwargs, split, source=config.source
            )
        else:
            documents = load_split(config, split)
        return apply_process_docs(process_docs, documents, self.name) if process_docs else documents

    @cached_property
    def documents(self) -> list[Document]:
        documents = self._split(self.config.eval_split, self.config.process_docs)
        if not documents:
            raise HarnessError(f"task '{self.name}' has no documents in split '{self.config.eval_split}'")
        return documents

    def _fewshot_pool(self) -> list[Document]:
        config = self.config
        if config.fewshot.split is None and config.fewshot.samples is not None:
            return [dict(sample) for sample in config.fewshot.samples]
        split = config.fewshot_source_split
        if split is None:
            raise HarnessError(f"task '{self.name}' asks for few-shot examples but names no split for them")
        process = config.fewshot.process_docs if config.fewshot.split is not None else config.process_docs
        pool = self._split(split, process)
        # One spare document is needed only when the evaluated document itself may be drawn.
        needed = config.num_fewshot + (1 if self._fewshot_from_eval_split else 0)
        if len(pool) < needed:
            raise HarnessError(f"task '{self.name}' has too few documents for {config.num_fewshot}-shot")
        return pool

    @property
    def _fewshot_from_eval_split(self) -> bool:
        return self.config.fewshot.split == self.config.test_split

    # -- document fields ---------------------------------------------------------------------------

    @property
    def _has_choices(self) -> bool:
        return self.config.doc_to_choice is not None

    def _text(self, doc: Mapping[str, Any], template: Template | None = None) -> Any:
        return templates.doc_to_text(
            template if template is not None else self.config.doc_to_text, doc, self._has_choices
        )

    def _choices(self, doc: Mapping[str, Any], template: Template | None = None) -> list[str]:
        chosen = template if template is not None else self.config.doc_to_choice
        if chosen is None:
            raise HarnessError(f"task '{self.name}' is multiple_choice but has no doc_to_choice")
        return templates.doc_to_choice(chosen, doc)

    def _target(self, doc: Mapping[str, Any], template: Template | None = None) -> Any:
        return templates.doc_to_target(
            template if template is not None else self.config.doc_to_target, doc, self._has_choices
        )

    def _multiple_input(self, doc: Mapping[str, Any]) -> bool:
        """lm-eval's "multiple inputs" (winogrande): doc_to_text gives the gold index, the choices are
        the contexts and the target is the one continuation scored after each of them."""
        return self._has_choices and isinstance(self._text(doc), int)

    def _gold_index(self, doc: Mapping[str, Any], choices: Sequence[str]) -> int | None:
        target = self._text(doc) if self._multiple_input(doc) else self._target(doc)
        if isinstance(target, int) and 0 <= target < len(choices):
            return target
        if isinstance(target, str) and target in choices:
            return list(choices).index(target)
        if self.config.process_results is not None:
            return None  # the task scores documents itself
        if isinstance(target, int | str) and not isinstance(target, bool):
            # lm-eval scores a document whose gold answer is not among its choices as wrong (-100),
            # with a warning, rather than stopping the run; so do we (one warning for all of them:
            # see _warn_unmatched_targets).
            return UNMATCHED_GOLD
        raise HarnessError(f"task '{self.name}': target {target!r} is not one of the choices {list(choices)}")

    # -- prompts -------------------------------------------------------------------------------------

    def _fewshot_examples(self, doc: Document, rng: random.Random, pool: list[Document]) -> list[Document]:
        n = self.config.num_fewshot
        exclude = doc if self._fewshot_from_eval_split else None
        if self.config.fewshot.sampler == "first_n":
            candidates = [example for example in pool if example != exclude] if exclude is not None else pool
            return candidates[:n]
        if exclude is None:
            return rng.sample(pool, n)
        # Draw one extra and drop the evaluated document itself, as lm-eval does.
        examples = [example for example in rng.sample(pool, n + 1) if example != exclude][:n]
        if len(examples) < n:
            examples = rng.sample([example for example in pool if example != exclude], n)
        return examples

    def _example_turn(self, example: Document) -> list[prompts.Message]:
        fewshot = self.config.fewshot
        question = self._text(example, fewshot.doc_to_text)
        choices = self._choices(example, fewshot.doc_to_choice) if fewshot.doc_to_choice is not None else None
        if choices is None and self._has_choices and fewshot.doc_to_choice is None:
            choices = self._choices(example)
        answer = self._target(example, fewshot.doc_to_target)
        if self._multiple_input(example) and choices is not None:
            question, choices = choices[question], None
        gen_prefix = prompts.resolve_field(example, fewshot.gen_prefix)
        target_delimiter = _first_set(fewshot.target_delimiter, self.config.target_delimiter)
        fewshot_delimiter = _first_set(fewshot.fewshot_delimiter, self.config.fewshot_delimiter)
        return prompts.qa_turn(question, choices, answer, gen_prefix, target_delimiter, fewshot_delimiter)

    def _prefix(
        self, doc: Document, rng: random.Random, pool: list[Document] | None
    ) -> list[prompts.Message]:
        """System instruction, description and few-shot examples: what comes before the document's turn."""
        config = self.config
        description = prompts.resolve_field(doc, config.description) or ""
        system = prompts.maybe_delimit(config.system_instruction, description, config.fewshot_delimiter)
        messages = [prompts.Message("system", system)] if system else []
        if config.num_fewshot > 0 and pool is not None:
            for example in self._fewshot_examples(doc, rng, pool):
                messages.extend(self._example_turn(example))
        return messages

    def _render(
        self,
        prefix: list[prompts.Message],
        question: Any,
        gen_prefix: str | None,
        chat: prompts.ChatRenderer | None,
        target_delimiter: str,
    ) -> str:
        if not isinstance(question, str):
            raise HarnessError(f"task '{self.name}': doc_to_text must give text, got {question!r}")
        messages = prefix + prompts.qa_turn(question, None, None, gen_prefix, target_delimiter, "")
        return prompts.render(messages, chat, self.config.fewshot_as_multiturn, bool(gen_prefix))

    def _instance(
        self, doc_id: int, doc: Document, prefix: list[prompts.Message], chat: prompts.ChatRenderer | None
    ) -> TaskInstance:
        config = self.config
        group = self._group(doc_id, doc)
        gen_prefix = prompts.resolve_field(doc, config.gen_prefix)
        if config.output_type == "loglikelihood_rolling":
            target = str(self._target(doc))
            return TaskInstance(doc_id, "", target, (RollingLoglikelihoodRequest(target),), group=group)
        question = self._text(doc)
        # Through a chat template the answer starts its own turn, so it needs no delimiter (lm-eval's rule).
        answer_delimiter = config.target_delimiter
        if chat is not None and not (gen_prefix and not gen_prefix[-1].isspace()):
            answer_delimiter = ""
        if config.output_type == "multiple_choice":
            choices = self._choices(doc)
            gold = self._gold_index(doc, choices)
            if isinstance(question, int):
                contexts = [self._render(prefix, choice, gen_prefix, chat, "") for choice in choices]
                continuation = answer_delimiter + str(self._target(doc))
                requests: tuple[Request, ...] = tuple(LoglikelihoodRequest(c, continuation) for c in contexts)
                context = contexts[gold if gold is not None and gold >= 0 else 0]
            else:
                context = self._render(prefix, question, gen_prefix, chat, config.target_delimiter)
                requests = tuple(LoglikelihoodRequest(context, answer_delimiter + c) for c in choices)
            target = choices[gold] if gold is not None and gold >= 0 else ""
            return TaskInstance(doc_id, context, target, requests, tuple(choices), gold, group=group)
        context = self._render(prefix, question, gen_prefix, chat, config.target_delimiter)
        if config.output_type == "loglikelihood":
            target = str(self._target(doc))
            return TaskInstance(
                doc_id, context, target, (LoglikelihoodRequest(context, target),), group=group
            )
        references = self._references(doc)
        prompt: str | tuple[ChatMessage, ...] = context
        if config.apply_chat_template and chat is None:
            # A model served behind a chat API applies its own template: it gets the turns themselves.
            turns = prefix + prompts.qa_turn(question, None, None, gen_prefix, config.target_delimiter, "")
            chat_turns = prompts.as_chat(turns, config.fewshot_as_multiturn)
            prompt = tuple(ChatMessage(turn["role"], turn["content"]) for turn in chat_turns)
        generation = tuple(
            GenerationRequest(prompt, settings) for settings in self._generation_settings(config.repeats)
        )
        return TaskInstance(doc_id, context, references[0], generation, references=references, group=group)

    def _group(self, doc_id: int, doc: Document) -> str | None:
        """The document's group: the field's value, or `a=x&b=y` for several fields (None if any is null)."""
        setting = self.config.group_field
        if setting is None:
            return None
        names = (setting,) if isinstance(setting, str) else setting
        values = []
        for field_name in names:
            if field_name not in doc:
                raise HarnessError(f"task '{self.name}': document {doc_id} has no field '{field_name}'")
            if doc[field_name] is None:
                return None
            values.append(str(doc[field_name]))
        if len(names) == 1:
            return values[0]
        return "&".join(f"{name}={value}" for name, value in zip(names, values, strict=True))

    def _references(self, doc: Mapping[str, Any]) -> tuple[str, ...]:
        target = self._target(doc)
        if self._has_choices and isinstance(target, int):
            return (self._choices(doc)[target],)
        if isinstance(target, list):
            return tuple(str(item) for item in target)
        return (str(target),)

    def _generation_settings(self, repeats: int) -> list[GenerationSettings]:
        kwargs = dict(self.config.generation_kwargs)
        max_tokens = int(kwargs.get("max_gen_toks") or kwargs.get("max_new_tokens") or 256)
        temperature = float(kwargs.get("temperature", 0.0))
        do_sample = bool(kwargs.get("do_sample", False)) and temperature > 0
        seed = kwargs.get("seed")
        settings = []
        for repeat in range(repeats):
            # Equal requests are served once: sampled repeats get their own seeds so they can differ;
            # greedy repeats are one request whose answer every repeat shares.
            repeat_seed = (seed if seed is not None else FEWSHOT_SEED) + repeat if do_sample else seed
            settings.append(
                GenerationSettings(
                    max_tokens=max_tokens,
                    stop=tuple(str(stop) for stop in kwargs.get("until", ())),
                    do_sample=do_sample,
                    temperature=temperature,
                    top_p=float(kwargs.get("top_p", 1.0)),
                    seed=repeat_seed if do_sample and repeats > 1 else seed,
                )
            )
        return settings

    def build_instances(
        self, limit: int | None = None, chat: prompts.ChatRenderer | None = None
    ) -> list[TaskInstance]:
        """The task's documents as requests. `chat` is the model's chat template, used when the task (or
        the run) asks for one: without it such a task cannot build its prompts."""
        if limit is not None and limit <= 0:
            raise HarnessError("--limit must be a positive number of documents")
        documents = self.documents[:limit] if limit is not None else self.documents
        if self.config.apply_chat_template and chat is None and self.output_type != "generate_until":
            raise HarnessError(
                f"task '{self.name}' asks for a chat template, but the model cannot apply one to the "
                "prompts it scores"
            )
        renderer = chat if self.config.apply_chat_template else None
        pool = self._fewshot_pool() if self.config.num_fewshot > 0 else None
        rng = random.Random(FEWSHOT_SEED)
        instances = []
        for doc_id, doc in enumerate(documents):
            try:
                prefix = self._prefix(doc, rng, pool) if self.output_type != "loglikelihood_rolling" else []
                instances.append(replace(self._instance(doc_id, doc, prefix, renderer), doc=doc))
            except HarnessError as error:
                raise HarnessError(self._at_document(doc_id, str(error))) from None
        self._warn_empty_fields(documents)
        self._warn_unmatched_targets(instances)
        return instances

    def _warn_unmatched_targets(self, instances: Sequence[TaskInstance]) -> None:
        unmatched = [instance for instance in instances if instance.gold == UNMATCHED_GOLD]
        if unmatched:
            first = unmatched[0]
            target = self._text(first.doc) if self._multiple_input(first.doc) else self._target(first.doc)
            message = (
                f"task '{self.name}': {len(unmatched)} of {len(instances)} documents have a target that is "
                f"not one of their choices (first: document {first.doc_id}, target {target!r}, choices "
                f"{list(first.choices)}); they are scored as wrong, as in lm-eval"
            )
            warnings.warn_explicit(HarnessWarning(message), HarnessWarning, "harness", 0)

    def _at_document(self, doc_id: int, message: str) -> str:
        """A template's error with where it happened: the task file (or task) and the document."""
        message = message.removeprefix(f"task '{self.name}': ")
        where = str(self.config.source) if self.config.source is not None else f"task '{self.name}'"
        return f"{where}: document {doc_id}: {message}"

    def _warn_empty_fields(self, documents: Sequence[Document]) -> None:
        """One warning for documents whose template fields are null or NaN. They still render as
        lm-eval renders them ('None', 'nan'), so prompts and numbers stay comparable; a user should
        know, since such a prompt is rarely what the data meant."""
        config = self.config
        templates_used = (config.doc_to_text, config.doc_to_target, config.doc_to_choice)
        fields = sorted(
            set().union(*(templates.fields_read(t) for t in templates_used if isinstance(t, str)))
        )
        first: tuple[int, str] | None = None
        count = 0
        for doc_id, doc in enumerate(documents):
            empty = [name for name in fields if name in doc and _is_empty(doc[name])]
            if empty:
                count += 1
                first = first or (doc_id, empty[0])
        if first is not None:
            message = (
                f"task '{self.name}': {count} of {len(documents)} documents have a null or NaN template "
                f"field (first: document {first[0]}, field '{first[1]}'); they render as 'None' or 'nan', "
                "as in lm-eval"
            )
            # warn_explicit with no source line: shown as one line (the CLI prints `harness: warning: ...`).
            warnings.warn_explicit(HarnessWarning(message), HarnessWarning, "harness", 0)

    # -- results -------------------------------------------------------------------------------------

    def filtered_outcomes(
        self, instances: Sequence[TaskInstance], results: Sequence[Sequence[Result]]
    ) -> dict[str, tuple[SampleOutcome, ...]]:
        """Each filter pipeline's outcomes of every document (in instance order)."""
        return score_instances(self.config, self.filters, instances, results)

    def outcome(self, instance: TaskInstance, results: Sequence[Result]) -> SampleOutcome:
        """The outcome of one document under the task's first filter pipeline."""
        outcomes = self.filtered_outcomes([instance], [results])
        return outcomes[self.filters[0].name][0]


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _first_set(value: str | None, default: str) -> str:
    return value if value is not None else default
