"""Prompt pieces written exactly as lm-evaluation-harness 0.4.13 writes them in plain-text mode.

A few-shot prompt is the description, then one question-and-answer turn per example, then the evaluated
document's question. Delimiters are added only where neither side of a join already has whitespace, and an
optional generation prefix (`gen_prefix`) starts the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.tasks import templates

__all__ = ["maybe_delimit", "qa_turn", "requires_delimiter", "resolve_field"]


def maybe_delimit(prefix: str | None, suffix: str | None, delimiter: str = " ") -> str:
    """`prefix` and `suffix` joined, with `delimiter` only when neither brings whitespace to the join."""
    if not prefix:
        return suffix or ""
    if not suffix:
        return prefix
    if prefix[-1].isspace() or suffix[0].isspace():
        return prefix + suffix
    return prefix + delimiter + suffix


def requires_delimiter(prefix: str, suffix: str) -> bool:
    return prefix != "" and not (prefix[-1].isspace() or suffix[0].isspace())


def resolve_field(doc: Mapping[str, Any], value: str | None) -> str | None:
    """A description or prefix: a document field by that name, else a template over the document."""
    if not value:
        return value
    if value in doc:
        return str(doc[value])
    return templates.render(value, doc)


def qa_turn(
    question: str,
    choices: Sequence[str] | None,
    answer: Any,
    gen_prefix: str | None,
    target_delimiter: str,
    fewshot_delimiter: str,
) -> str:
    """One turn: the question, then the answer (few-shot examples) or the generation prefix."""
    if not isinstance(question, str):
        raise TypeError(f"a question must be text, not {question!r}")
    has_answer = answer is not None and answer != ""
    if (has_answer and not gen_prefix) or (gen_prefix and requires_delimiter(question, gen_prefix)):
        text = question + target_delimiter
    else:
        text = question
    if has_answer:
        if choices and isinstance(answer, int):
            answer_text = choices[answer]
        elif isinstance(answer, list):
            answer_text = answer[0]
        else:
            answer_text = answer
        return text + maybe_delimit(gen_prefix, str(answer_text), " ") + fewshot_delimiter
    if gen_prefix:
        return text + gen_prefix
    return text
