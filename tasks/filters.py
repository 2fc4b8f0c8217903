"""Response filters: a task YAML's `filter_list`, parsed into pipelines and applied as lm-eval 0.4.13 does.

This module owns validating `filter_list` (every mistake is one HarnessError line naming the YAML file and
the pipeline, step and key at fault) and applying each named pipeline to every document's responses, so
that `FilterPipeline.apply` returns exactly what lm-eval stores as `filtered_resps[name]`.

Each step sees every document's current value at once, as lm-eval's filters do: at first a document's
list of responses (one per repeat), after `take_first` a single response. Later steps iterate whatever
they are given, so a `regex` placed after `take_first` works on the characters of the response, as it
does in lm-eval; the pipelines in lm-eval's own tasks rely on such orderings (`map` after `take_first`).
"""

from __future__ import annotations

import inspect
import re
import sys
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

from harness.errors import HarnessError, UnknownNameError
from harness.registry import Registry

Docs = Sequence[Mapping[str, Any]]

# lm-eval's defaults for `regex` and `multi_choice_regex`: gsm8k's "#### <number>" answer line.
DEFAULT_REGEX_PATTERN = r"#### (\-?[0-9\.\,]+)"
DEFAULT_FALLBACK = "[invalid]"


class FilterStep(ABC):
    """One step of a pipeline: maps the values of all documents (in order) to their new values."""

    @abstractmethod
    def apply(self, values: list[Any], docs: Docs) -> list[Any]: ...


def _select(matches: list[Any], group_select: int, function: str) -> Any:
    try:
        return matches[group_select]
    except IndexError:
        # lm-eval crashes with a bare IndexError here; there is no number to agree with, so say why.
        raise HarnessError(
            f"{function}: group_select {group_select} is out of range for a response with "
            f"{len(matches)} match(es)"
        ) from None


@dataclass(frozen=True)
class RegexExtract(FilterStep):
    """`regex`: each response becomes its `group_select`-th match of the pattern, or `fallback`."""

    pattern: re.Pattern[str]
    group_select: int = 0
    fallback: str = DEFAULT_FALLBACK

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        return [[self._extract(response) for response in responses] for responses in values]

    def _extract(self, response: Any) -> Any:
        matches = self.pattern.findall(response if isinstance(response, str) else "")
        if not matches:
            return self.fallback
        match = _select(matches, self.group_select, "regex")
        if isinstance(match, tuple):
            # With several groups, lm-eval keeps the first one that captured text; the fallback used
            # when none did is stripped along with real matches (a quirk kept for identical output).
            match = next((group for group in match if group), self.fallback)
        return match.strip()


@dataclass(frozen=True)
class MultiChoiceRegexExtract(FilterStep):
    """`multi_choice_regex`: a letter answer "(A)", "(B)", ... for documents with a `choices` list.

    Tried in order, the first non-empty result wins: the pattern itself (its match kept as is); the
    text of a choice found in the normalised response (mapped to that choice's letter); a letter after a
    colon (": B"). Normalising (regexes_to_ignore, then ignore_case, then ignore_punctuation) applies to
    both the choices and the response, and only in the second attempt.
    """

    pattern: re.Pattern[str]
    group_select: int = 0
    fallback: str = DEFAULT_FALLBACK
    ignore_case: bool = False
    ignore_punctuation: bool = False
    regexes_to_ignore: tuple[str, ...] = ()

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        if len(values) != len(docs):
            raise HarnessError(f"multi_choice_regex: {len(values)} response lists for {len(docs)} documents")
        return [self._extract_document(responses, doc) for responses, doc in zip(values, docs, strict=True)]

    def _normalise(self, text: Any) -> Any:
        for ignored in self.regexes_to_ignore:
            text = re.sub(ignored, "", text)
        if self.ignore_case:
            text = text.lower()
        if self.ignore_punctuation:
            text = text.translate(_punctuation_table())
        return text

    def _find(self, pattern: re.Pattern[str], text: Any, labels: Mapping[str, str]) -> str:
        matches = pattern.findall(text if isinstance(text, str) else "")
        if not matches:
            return ""
        match = _select(matches, self.group_select, "multi_choice_regex")
        if isinstance(match, tuple):
            match = next((group for group in match if group), "")
        match = match.strip()
        return labels.get(match, match) if match else match

    def _extract_document(self, responses: Any, doc: Mapping[str, Any]) -> list[str]:
        if "choices" not in doc:
            raise HarnessError(
                f"multi_choice_regex: needs a 'choices' list in every document; found keys {sorted(doc)}"
            )
        choice_labels: dict[str, str] = {}
        escaped_choices: list[str] = []
        letters: list[str] = []
        for position, choice in enumerate(doc["choices"]):
            letter = chr(ord("A") + position)
            normalised = self._normalise(choice.strip())
            escaped_choices.append(re.escape(normalised))
            choice_labels[normalised] = f"({letter})"
            letters.append(letter)
        # Longest branch first: alternation is leftmost-wins, so "Guilty" must not shadow "Guilty of
        # Romance". Letters are not escaped, as in lm-eval: past 26 choices they turn into regex syntax.
        choice_text = re.compile("|".join(sorted(escaped_choices, key=len, reverse=True)))
        letter_after_colon = re.compile(rf":[\s]*({'|'.join(letters)})")
        letter_labels = {letter: f"({letter})" for letter in letters}
        return [
            self._find(self.pattern, response, {})
            or self._find(choice_text, self._normalise(response), choice_labels)
            or self._find(letter_after_colon, response, letter_labels)
            or self.fallback
            for response in responses
        ]


@cache
def _punctuation_table() -> dict[int, None]:
    # Built once rather than on every application (lm-eval rebuilds it each time): ~1.1M code points.
    return dict.fromkeys(
        code for code in range(sys.maxunicode) if unicodedata.category(chr(code)).startswith("P")
    )


@dataclass(frozen=True)
class StringMethod(FilterStep):
    """`remove_whitespace`, `lowercase`, `uppercase`: a str method called on every response."""

    method: Literal["strip", "lower", "upper"]

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        return [[getattr(response, self.method)() for response in responses] for responses in values]


@dataclass(frozen=True)
class MapValues(FilterStep):
    """`map`: each response becomes `mapping[response]`, or `default_value` when it is not a key."""

    mapping: Mapping[Any, Any] = field(default_factory=dict)
    default_value: Any = None

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        return [
            [self.mapping.get(response, self.default_value) for response in responses] for responses in values
        ]


@dataclass(frozen=True)
class TakeFirst(FilterStep):
    """`take_first`: a document's value becomes its first element (its first response, at the start)."""

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        return [responses[0] for responses in values]


@dataclass(frozen=True)
class TakeFirstK(FilterStep):
    """`take_first_k`: keep each document's first k responses."""

    k: int

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        # lm-eval asserts this for the first document only; documents all have `repeats` responses.
        for responses in values:
            if len(responses) < self.k:
                raise HarnessError(
                    f"take_first_k: needs at least {self.k} responses per document, got {len(responses)}; "
                    "raise the task's repeats"
                )
        return [responses[: self.k] for responses in values]


@dataclass(frozen=True)
class MajorityVote(FilterStep):
    """`majority_vote`: each document's most frequent response, as a one-element list.

    Ties go to the response that appeared first, as with lm-eval's Counter.most_common(1).
    """

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        voted = []
        for responses in values:
            counts = Counter(responses)
            voted.append([max(counts, key=counts.__getitem__)])
        return voted


@dataclass(frozen=True)
class CustomFunction(FilterStep):
    """`custom`: `filter_fn(values, docs)`, a Python function the YAML names with `!function`.

    It is always given a list, where lm-eval may pass a one-pass iterator (what its take_first returns).
    """

    filter_fn: Callable[[list[Any], Docs], Any]

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        return list(self.filter_fn(values, docs))


@dataclass(frozen=True)
class FilterClassStep(FilterStep):
    """A filter class given as the step's function itself (`function: !function utils.MyFilter`).

    lm-eval instantiates it with the step's other keys before each application and calls its
    `apply(values, docs)`; lm-eval's own tasks (bbh) use this for filters of their own.
    """

    filter_class: Callable[..., Any]
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, values: list[Any], docs: Docs) -> list[Any]:
        return list(self.filter_class(**self.arguments).apply(values, docs))


@dataclass(frozen=True)
class FilterPipeline:
    """One named entry of `filter_list` (lm-eval's "filter ensemble"): steps applied in order."""

    name: str
    steps: tuple[FilterStep, ...]

    def apply(self, responses: Sequence[Sequence[Any]], docs: Docs) -> list[Any]:
        """responses[i] is document i's list of responses (one per repeat); returns each document's
        filtered response, exactly what lm-eval stores as filtered_resps[name]."""
        if len(responses) != len(docs):
            raise HarnessError(
                f"filter '{self.name}': {len(responses)} response lists for {len(docs)} documents"
            )
        values: list[Any] = list(responses)
        for step in self.steps:
            values = step.apply(values, docs)
            # lm-eval zips the result with the documents and silently drops any surplus or shortfall.
            if len(values) != len(docs):
                raise HarnessError(
                    f"filter '{self.name}': step {type(step).__name__} returned {len(values)} values "
                    f"for {len(docs)} documents"
                )
        return values


DEFAULT_PIPELINE = FilterPipeline("none", (TakeFirst(),))


class _ArgumentError(Exception):
    """A step's keyword arguments are wrong; the builder adds where in the YAML."""


StepFactory = Callable[[Mapping[str, Any]], FilterStep]
FILTERS: Registry[StepFactory] = Registry("filter function", "harness.filters")

# Registered in lm-eval 0.4.13 but not supported here; none is used by an lm-eval task's YAML.
UNSUPPORTED_FILTERS = {
    "decontaminate": "lm-eval's decontaminate filter is a stub whose apply returns nothing (it crashes)",
    "regex_pos": "regex_pos (part-of-speech tags) ignores its regex_pattern and group_select in lm-eval",
    "format_span": "format_span (named-entity span formatting) is not implemented",
    "ACP_grammar_filter": "ACP_grammar_filter belongs to lm-eval's acpbench task code",
}
UNSUPPORTED_HINT = (
    "; use 'custom' with filter_fn: !function module.function, or function: !function module.Class"
)


def _check_arguments(
    arguments: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str] = ()
) -> None:
    for key in arguments:
        if key not in allowed:
            known = f"known: {', '.join(allowed)}" if allowed else "it takes none"
            raise _ArgumentError(f"unknown argument '{key}' ({known})")
    for key in required:
        if key not in arguments:
            raise _ArgumentError(f"missing argument '{key}'")


def _wrong_type(key: str, expected: str, value: Any) -> _ArgumentError:
    return _ArgumentError(f"argument '{key}' must be {expected}, got {type(value).__name__} {value!r}")


def _string(arguments: Mapping[str, Any], key: str, default: str) -> str:
    value = arguments.get(key, default)
    if not isinstance(value, str):
        raise _wrong_type(key, "a string", value)
    return value


def _integer(arguments: Mapping[str, Any], key: str, default: int) -> int:
    value = arguments.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(key, "an integer", value)
    return value


def _boolean(arguments: Mapping[str, Any], key: str, default: bool) -> bool:
    value = arguments.get(key, default)
    if not isinstance(value, bool):
        raise _wrong_type(key, "true or false", value)
    return value


def _compiled(key: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise _ArgumentError(
            f"argument '{key}' is not a valid regular expression {pattern!r}: {error}"
        ) from None


def _regex(arguments: Mapping[str, Any]) -> FilterStep:
    _check_arguments(arguments, ("regex_pattern", "group_select", "fallback"))
    return RegexExtract(
        pattern=_compiled("regex_pattern", _string(arguments, "regex_pattern", DEFAULT_REGEX_PATTERN)),
        group_select=_integer(arguments, "group_select", 0),
        fallback=_string(arguments, "fallback", DEFAULT_FALLBACK),
    )


def _multi_choice_regex(arguments: Mapping[str, Any]) -> FilterStep:
    _check_arguments(
        arguments,
        (
            "regex_pattern",
            "group_select",
            "fallback",
            "ignore_case",
            "ignore_punctuation",
            "regexes_to_ignore",
        ),
    )
    ignored = arguments.get("regexes_to_ignore")
    if ignored is None:
        ignored = []
    if not isinstance(ignored, list | tuple) or not all(isinstance(pattern, str) for pattern in ignored):
        raise _wrong_type("regexes_to_ignore", "a list of strings", ignored)
    for pattern in ignored:
        _compiled("regexes_to_ignore", pattern)
    return MultiChoiceRegexExtract(
        pattern=_compiled("regex_pattern", _string(arguments, "regex_pattern", DEFAULT_REGEX_PATTERN)),
        group_select=_integer(arguments, "group_select", 0),
        fallback=_string(arguments, "fallback", DEFAULT_FALLBACK),
        ignore_case=_boolean(arguments, "ignore_case", False),
        ignore_punctuation=_boolean(arguments, "ignore_punctuation", False),
        regexes_to_ignore=tuple(ignored),
    )


def _map(arguments: Mapping[str, Any]) -> FilterStep:
    _check_arguments(arguments, ("mapping_dict", "default_value"))
    mapping = arguments.get("mapping_dict")
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise _wrong_type("mapping_dict", "a mapping", mapping)
    return MapValues(dict(mapping), arguments.get("default_value"))


def _take_first_k(arguments: Mapping[str, Any]) -> FilterStep:
    _check_arguments(arguments, ("k",), required=("k",))
    return TakeFirstK(_integer(arguments, "k", 0))


def _custom(arguments: Mapping[str, Any]) -> FilterStep:
    _check_arguments(arguments, ("filter_fn",), required=("filter_fn",))
    filter_fn = arguments["filter_fn"]
    if not callable(filter_fn):
        raise _wrong_type("filter_fn", "a Python function (filter_fn: !function module.function)", filter_fn)
    return CustomFunction(filter_fn)


def _without_arguments(step: FilterStep) -> StepFactory:
    def build(arguments: Mapping[str, Any]) -> FilterStep:
        _check_arguments(arguments, ())
        return step

    return build


for _name, _factory in {
    "regex": _regex,
    "multi_choice_regex": _multi_choice_regex,
    "remove_whitespace": _without_arguments(StringMethod("strip")),
    "lowercase": _without_arguments(StringMethod("lower")),
    "uppercase": _without_arguments(StringMethod("upper")),
    "map": _map,
    "take_first": _without_arguments(TakeFirst()),
    "take_first_k": _take_first_k,
    "majority_vote": _without_arguments(MajorityVote()),
    "custom": _custom,
}.items():
    FILTERS.register(_name, _factory)


def _filter_class_step(filter_class: Callable[..., Any], arguments: Mapping[str, Any]) -> FilterStep:
    try:
        inspect.signature(filter_class).bind(**arguments)
    except TypeError as error:
        raise _ArgumentError(str(error)) from None
    except ValueError:  # no signature to check (a builtin); the call itself will tell
        pass
    return FilterClassStep(filter_class, dict(arguments))


def _build_step(step: Any, where: str) -> FilterStep:
    if not isinstance(step, Mapping):
        raise HarnessError(f"{where}: expected a mapping with a 'function' key, got {type(step).__name__}")
    if "function" not in step:
        raise HarnessError(f"{where}: missing 'function' (keys: {', '.join(map(str, step))})")
    function = step["function"]
    arguments = {key: value for key, value in step.items() if key != "function"}
    if callable(function):
        label = getattr(function, "__name__", repr(function))
        build: StepFactory = partial(_filter_class_step, function)
    elif isinstance(function, str):
        label = function
        if function in UNSUPPORTED_FILTERS:
            raise HarnessError(
                f"{where}: unsupported filter function '{function}': "
                f"{UNSUPPORTED_FILTERS[function]}{UNSUPPORTED_HINT}"
            )
        try:
            build = FILTERS.get(function)
        except UnknownNameError as error:
            raise HarnessError(f"{where}: {error}") from None
    else:
        raise HarnessError(
            f"{where}: 'function' must be a filter name or a !function callable, "
            f"got {type(function).__name__}"
        )
    try:
        return build(arguments)
    except _ArgumentError as error:
        raise HarnessError(f"{where} ({label}): {error}") from None


def _build_pipeline(entry: Any, where: str) -> FilterPipeline:
    if not isinstance(entry, Mapping):
        raise HarnessError(
            f"{where}: expected a mapping with 'name' and 'filter', got {type(entry).__name__}"
        )
    unknown = [str(key) for key in entry if key not in ("name", "filter")]
    if unknown:
        raise HarnessError(f"{where}: unknown key '{unknown[0]}' (known: name, filter)")
    for key in ("name", "filter"):
        if key not in entry:
            raise HarnessError(f"{where}: missing '{key}'")
    name = entry["name"]
    if not isinstance(name, str) or not name:
        raise HarnessError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    where = f"{where} '{name}'"
    steps = entry["filter"]
    if not isinstance(steps, list | tuple):
        raise HarnessError(f"{where}: 'filter' must be a list of steps, got {type(steps).__name__}")
    return FilterPipeline(
        name, tuple(_build_step(step, f"{where} step {position}") for position, step in enumerate(steps, 1))
    )


def build_filter_pipelines(filter_list: Any, source: Path | None = None) -> tuple[FilterPipeline, ...]:
    """The pipelines a task YAML's filter_list describes; None gives lm-eval's default, (DEFAULT_PIPELINE,).

    Any mistake (unknown or unsupported filter function, missing 'name'/'filter'/'function', unknown
    argument or one of the wrong type, invalid regex) raises a one-line HarnessError naming `source`,
    the pipeline and the step.
    """
    where = f"{source}: filter_list" if source is not None else "filter_list"
    if filter_list is None:
        return (DEFAULT_PIPELINE,)
    # lm-eval would iterate a string's characters, and an empty list leaves no filtered responses at all.
    if not isinstance(filter_list, list | tuple) or not filter_list:
        raise HarnessError(
            f"{where}: expected a non-empty list of {{name, filter}} entries "
            f"(omit filter_list for take_first), got {filter_list!r:.80}"
        )
    pipelines = tuple(
        _build_pipeline(entry, f"{where}[{position}]") for position, entry in enumerate(filter_list)
    )
    names = [pipeline.name for pipeline in pipelines]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        # lm-eval would let the later pipeline overwrite the earlier one's results under the same name.
        raise HarnessError(f"{where}: pipeline name '{duplicates[0]}' is used more than once")
    return pipelines
