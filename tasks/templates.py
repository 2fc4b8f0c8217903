"""doc_to_text / doc_to_target / doc_to_choice, resolved the way lm-evaluation-harness resolves them.

A string that names a document field reads that field; any other string is a Jinja template. Template
results that look like digits (with choices) or like a Python list are turned into values, as lm-eval does.

Templates are data, not code: they render in Jinja's immutable sandbox (no attribute starting with an
underscore, no mutation of the document), and every render has a budget of loop steps, so a template can
neither run a command nor loop for hours. (Python hooks, `!function`, are code and are trusted as code.)
"""

from __future__ import annotations

import ast
import contextvars
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness.errors import HarnessError


def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


# Loop steps one render may take over `range` (the only way a template can loop beyond its data).
MAX_LOOP_STEPS = 1_000_000
_steps_left: contextvars.ContextVar[int] = contextvars.ContextVar(
    "template_steps_left", default=MAX_LOOP_STEPS
)


def _budgeted_range(*args: int) -> range:
    steps = len(range(*args))
    left = _steps_left.get() - steps
    if left < 0:
        raise SecurityError(f"template loops more than {MAX_LOOP_STEPS:,} steps")
    _steps_left.set(left)
    return range(*args)


# The largest string or list a template may build by repetition, and the largest power it may raise to.
MAX_REPEAT = 1_000_000
MAX_EXPONENT = 1_000


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on `*` and `**`, which could otherwise fill memory or hang."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                repeats = isinstance(sequence, str | list | tuple) and isinstance(count, int)
                if repeats and len(sequence) * count > MAX_REPEAT:
                    raise SecurityError(f"repetition longer than {MAX_REPEAT:,} items")
        return super().call_binop(context, operator, left, right)


_ENVIRONMENT = _BoundedSandbox(
    loader=jinja2.BaseLoader(), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)
_ENVIRONMENT.filters["regex_replace"] = _regex_replace
_ENVIRONMENT.globals["range"] = _budgeted_range


@lru_cache(maxsize=512)
def _compiled(template: str) -> jinja2.Template:
    try:
        return _ENVIRONMENT.from_string(template)
    except jinja2.TemplateSyntaxError as error:
        raise HarnessError(f"invalid Jinja template {template!r}: {error.message}") from None


# How the sandbox's refusals surface: its undefined value for an unsafe attribute, used further.
_PRIVATE_ATTRIBUTE = re.compile(r"is unsafe|Undefined object' has no attribute '_")


def render(template: str, doc: Mapping[str, Any]) -> str:
    compiled = _compiled(template)
    budget = _steps_left.set(MAX_LOOP_STEPS)
    try:
        return compiled.render(**doc)
    except jinja2.UndefinedError as error:
        if _PRIVATE_ATTRIBUTE.search(error.message or ""):
            # The sandbox turned a private attribute (`|attr('__class__')`) into an undefined value.
            raise HarnessError(
                f"template {_shorten(template)} refused: access to an unsafe attribute"
            ) from None
        raise HarnessError(f"template {template!r} uses a missing field: {error.message}") from None
    except SecurityError as error:
        raise HarnessError(f"template {_shorten(template)} refused: {error}") from None
    except (TypeError, ValueError, ArithmeticError, OverflowError) as error:
        raise HarnessError(f"template {_shorten(template)} failed: {type(error).__name__}: {error}") from None
    finally:
        _steps_left.reset(budget)


@lru_cache(maxsize=512)
def fields_read(template: str) -> frozenset[str]:
    """The document fields a doc_to_* string may read: itself (a field name) and the variables its
    template uses (only those the document has are fields; the rest are Jinja's own, such as `range`)."""
    try:
        variables = jinja2.meta.find_undeclared_variables(_ENVIRONMENT.parse(template))
    except jinja2.TemplateSyntaxError:
        variables = set()  # reported when the template is rendered
    return frozenset({template, *variables})


def _shorten(template: str) -> str:
    return repr(template if len(template) <= 80 else template[:77] + "...")


def doc_to_text(template: Any, doc: Mapping[str, Any], has_choices: bool) -> Any:
    if callable(template):  # a `!function` hook
        return template(doc)
    if isinstance(template, int):
        return template
    if not isinstance(template, str):
        raise HarnessError(f"doc_to_text must be a field name or a template, not {type(template).__name__}")
    if template in doc:
        return doc[template]
    text = render(template, doc)
    if text.isdigit() and has_choices:
        return ast.literal_eval(text)
    return text


def doc_to_target(template: Any, doc: Mapping[str, Any], has_choices: bool) -> Any:
    if callable(template):
        return template(doc)
    if isinstance(template, int | list):
        return template
    if not isinstance(template, str):
        raise HarnessError(f"doc_to_target must be a field name or a template, not {type(template).__name__}")
    if template in doc:
        return doc[template]
    text = render(template, doc)
    if text.isdigit() and has_choices:
        return ast.literal_eval(text)
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        try:
            return ast.literal_eval(text)
        except (SyntaxError, ValueError):
            return text
    return text


def doc_to_choice(template: Any, doc: Mapping[str, Any]) -> list[str]:
    if callable(template):
        choices = template(doc)
    elif isinstance(template, list):
        choices = template
    elif isinstance(template, Mapping):
        choices = list(template.values())
    elif isinstance(template, str):
        if template in doc:
            choices = doc[template]
        else:
            rendered = render(template, doc)
            try:
                choices = ast.literal_eval(rendered)
            except (SyntaxError, ValueError):
                raise HarnessError(f"doc_to_choice template gave {rendered!r}, not a list") from None
    else:
        raise HarnessError(f"doc_to_choice must be a list, mapping, field or template, not {template!r}")
    if not isinstance(choices, list | tuple) or not choices:
        raise HarnessError(f"doc_to_choice must give a non-empty list, got {choices!r}")
    return [str(choice) for choice in choices]
