"""Prompts written as lm-evaluation-harness 0.4.13 writes them: plain text, or through a chat template.

A prompt is a list of messages: an optional system message (the run's system instruction and the task's
description), one user/assistant pair per few-shot example, and the evaluated document's question (plus an
assistant message holding the generation prefix, `gen_prefix`, if the task has one). Each message carries
the delimiter that follows it in plain text. Delimiters are added only where neither side of a join already
has whitespace.

With a chat template the messages are rendered by the model's template: as separate turns
(`fewshot_as_multiturn`), or collapsed into one user message (plus system and a trailing assistant prefix),
which is lm-eval's default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.tasks import templates

__all__ = [
    "ChatRenderer",
    "Message",
    "as_chat",
    "as_text",
    "maybe_delimit",
    "qa_turn",
    "requires_delimiter",
    "resolve_field",
]

# Renders chat messages ({"role", "content"} dicts) with the model's template; the flag asks the template
# to open an assistant turn (False when the prompt already ends in an assistant prefix, to continue it).
ChatRenderer = Callable[[list[dict[str, str]], bool], str]


@dataclass(frozen=True)
class Message:
    role: str  # system, user, assistant
    content: str
    delimiter: str = ""  # what follows the content in plain text

    def text(self) -> str:
        return self.content + self.delimiter


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
) -> list[Message]:
    """One turn: the question, then the answer (few-shot examples) or the generation prefix."""
    if not isinstance(question, str):
        raise TypeError(f"a question must be text, not {question!r}")
    has_answer = answer is not None and answer != ""
    if (has_answer and not gen_prefix) or (gen_prefix and requires_delimiter(question, gen_prefix)):
        user = Message("user", question, target_delimiter)
    else:
        user = Message("user", question)
    if has_answer:
        if choices and isinstance(answer, int):
            answer_text = choices[answer]
        elif isinstance(answer, list):
            answer_text = answer[0]
        else:
            answer_text = answer
        return [
            user,
            Message("assistant", maybe_delimit(gen_prefix, str(answer_text), " "), fewshot_delimiter),
        ]
    if gen_prefix:
        return [user, Message("assistant", gen_prefix)]
    return [user]


def as_text(messages: Sequence[Message]) -> str:
    return "".join(message.text() for message in messages)


def as_chat(messages: Sequence[Message], multiturn: bool) -> list[dict[str, str]]:
    """The messages as chat turns: each its own, or (lm-eval's default) every non-system message but a
    trailing assistant prefix collapsed into one user message."""
    if multiturn:
        return [{"role": m.role, "content": m.content} for m in messages]
    system = messages[0] if messages and messages[0].role == "system" else None
    rest = list(messages[1:] if system is not None else messages)
    trailing = rest.pop() if rest and rest[-1].role == "assistant" else None
    if rest:
        # The last message before the turn ends keeps no delimiter, as lm-eval collapses it.
        rest[-1] = replace(rest[-1], delimiter="")
    chat = [{"role": "user", "content": as_text(rest)}]
    if trailing is not None:
        chat.append({"role": trailing.role, "content": trailing.content})
    return [{"role": "system", "content": system.content}, *chat] if system is not None else chat


def render(
    messages: Sequence[Message], chat: ChatRenderer | None, multiturn: bool, ends_with_prefix: bool
) -> str:
    """The prompt string: plain text, or the chat template's rendering of the messages."""
    if chat is None:
        return as_text(messages)
    return chat(as_chat(messages, multiturn), not ends_with_prefix)
