"""doc_to_text / doc_to_target / doc_to_choice, resolved the way lm-evaluation-harness resolves them.

A string that names a document field reads that field; any other string is a Jinja template. Template
results that look like digits (with choices) or like a Python list are turned into values, as lm-eval does.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2

from harness.errors import HarnessError


def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.BaseLoader(), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)
_ENVIRONMENT.filters["regex_replace"] = _regex_replace


@lru_cache(maxsize=512)
def _compiled(template: str) -> jinja2.Template:
    try:
        return _ENVIRONMENT.from_string(template)
    except jinja2.TemplateSyntaxError as error:
        raise HarnessError(f"invalid Jinja template {template!r}: {error.message}") from None


def render(template: str, doc: Mapping[str, Any]) -> str:
    try:
        return _compiled(template).render(**doc)
    except jinja2.UndefinedError as error:
        raise HarnessError(f"template {template!r} uses a missing field: {error.message}") from None


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
