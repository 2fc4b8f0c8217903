"""The top-level `task:`, `group:`, `tag:`, `class:` and `include:` keys of lm-eval task YAML, read fast.

This module owns reading those keys the way PyYAML would load them, without parsing the whole file: a
line reader checks every line that starts in column 0 (top-level keys, and list items written flush
with their key) and picks out the index keys' values: plain, quoted, `[a, b]` and block lists, and
`!function` references kept as text. Whatever it cannot vouch for (a value that may carry on over a
later column-0 line, anchors, escapes, a document that is not a plain mapping, odd characters) goes to
PyYAML's C loader instead, which also reads `!function` and any other tag as the plain value.

Indented lines are looked at only where they follow a value written on its key's line (they must carry
on a plain or quoted scalar) or belong to an index key; breakage inside nested values (which makes
PyYAML, and so lm-eval, reject the file) goes unnoticed unless `full_parse=True`.
"""

from __future__ import annotations

import functools
import re

import yaml

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["INDEX_KEYS", "Keys", "UnreadableYaml", "read_index_keys"]

INDEX_KEYS = frozenset({"task", "group", "tag", "class", "include"})

Keys = dict[str, object]


class UnreadableYaml(Exception):
    """PyYAML cannot load the file, or it is not a mapping; the message says why."""


class _NeedsParser(Exception):
    """The line reader cannot be sure what PyYAML would make of the file."""


class _Marker:
    def __init__(self, meaning: str) -> None:
        self.meaning = meaning

    def __repr__(self) -> str:
        return self.meaning


# What the value written on a key's own line turned out to be, when it is not (yet) a loaded value.
_BLOCK = _Marker("nothing yet: the value is on the following lines")
_BLOCK_SCALAR = _Marker("a | or > block scalar: its text is on the following, indented lines")
_OPEN_QUOTE = _Marker("a quoted scalar that continues on the following lines")
_PLAIN = _Marker("a plain scalar, which may continue on the following, indented lines")
_ONE_LINE = _Marker("a value complete on its line")

# Each line starting in column 0 that is not a comment: a top-level key (double-quoted as generated files
# write them, single-quoted or a plain identifier) with the rest of its line, or any other line (groups
# all None: a list item, or something only the parser can read).
_COLUMN_ZERO_LINE = re.compile(
    r"""^(?:(?:"([^"\\\n]*)"|'([^'\n]*)'|([A-Za-z_][\w.\-/]*)) *:( [^\r\n]*)?\r?$|[^ \r\n#][^\n]*)""",
    re.MULTILINE,
)
# Possessive, so that an unclosed scalar fails instead of matching a shorter prefix; newlines allowed for
# scalars that carry on over indented lines.
_DOUBLE_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*+)"', re.DOTALL)
_SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*+)'")
# A tag and an anchor, at most one of each, before a value; anything fancier goes to the parser.
_TAG = r"!(?:![\w.\-/:]+|[\w.\-/:]*)"
_ANCHOR = r"&[A-Za-z0-9_\-]+"
_PROPERTIES = re.compile(rf"(?:{_TAG}(?: +{_ANCHOR})?|{_ANCHOR}(?: +{_TAG})?)(?: +|$)")
_BLOCK_SCALAR_HEADER = re.compile(r"[|>](?:[1-9][+-]?|[+-][1-9]?)?(?: +#.*| *)$")
_PLAIN_START_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
# Characters YAML rejects (control characters) or reads as line breaks (NEL, LS, PS): left to the parser.
_PRINTABLE_ASCII = bytes([9, 10, 13, *range(32, 127)])
_ODD_CHARACTER = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def read_index_keys(data: bytes, *, full_parse: bool = False) -> Keys:
    """The top-level index keys of a YAML file's bytes, as PyYAML would load them (or UnreadableYaml).

    With `full_parse` every file is parsed by PyYAML, so breakage anywhere in it is noticed.
    """
    if not full_parse:
        text = _plain_text(data)
        if text is not None:
            try:
                return _line_keys(text)
            except _NeedsParser:
                pass
    return _parsed_keys(data)


def _plain_text(data: bytes) -> str | None:
    if data.count(b"\r") != data.count(b"\r\n"):
        return None  # a lone CR is a line break to YAML
    if data.isascii():
        return None if data.translate(None, _PRINTABLE_ASCII) else data.decode("ascii")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None  # PyYAML also reads UTF-16
    return None if _ODD_CHARACTER.search(text) else text


def _line_keys(text: str) -> Keys:
    """Read the top-level index keys from the lines that start in column 0 (raises _NeedsParser).

    A top-level key line starts in column 0, and so do the items of a block list written flush with its
    key (`tag:` then `- a`). Every column-0 line is checked to be one of those two; values that could
    carry on over later column-0 lines (open quotes or brackets) send the file to the parser.
    """
    tops = list(_COLUMN_ZERO_LINE.finditer(text))
    if not tops or _has_content(text[: tops[0].start()]):
        raise _NeedsParser  # empty, indented or not a mapping: let the parser say what it is
    keys: Keys = {}
    block_may_follow = False
    block_start = -1  # where the lines below the last key start, until its first column-0 list item
    position, count = 0, len(tops)
    while position < count:
        match = tops[position]
        position += 1
        double_quoted, single_quoted, plain, rest = match.groups()
        key = plain if plain is not None else double_quoted if double_quoted is not None else single_quoted
        if key is None:
            if not (block_may_follow and _is_list_item(match.group())):
                raise _NeedsParser  # "---", a list, a quoted key with escapes, a complex key, `key:value`...
            if block_start >= 0 and _CONTENT_LINE.search(text, block_start, match.start()):
                raise _NeedsParser  # indented lines, then column-0 items: not one block
            block_start = -1
            continue
        wanted = key in INDEX_KEYS
        if rest is None:
            value: object = _BLOCK
        elif "\t" in rest:
            raise _NeedsParser  # YAML accepts tabs in some places only
        else:
            value = _inline_value(rest.lstrip(" "), wanted)
        if value is _OPEN_QUOTE or value is _PLAIN or value is _ONE_LINE:
            next_start = tops[position].start() if position < count else len(text)
            _check_lines_after(value, rest or "", text, match.end(), next_start)
        block_may_follow = value is _BLOCK
        block_start = match.end()
        if wanted:
            after = position
            while after < count and _is_list_item(tops[after].group()):
                after += 1
            block = text[match.end() : tops[after].start() if after < count else len(text)]
            if value is _BLOCK:
                value = _block_value(block, key)
            elif _has_content(block):
                raise _NeedsParser  # a plain scalar continued on indented lines, or invalid YAML
            keys[key] = value  # a repeated key: the last one wins, as in PyYAML
    return keys


def _is_list_item(line: str) -> bool:
    return line.startswith("-") and (len(line) == 1 or line[1] in " \r")


def _inline_value(value: str, wanted: bool) -> object:
    """The value written on a key's own line: the loaded value of an index key, else a marker."""
    if not value or value[0] == "#":
        return _BLOCK
    first = value[0]
    if first in "!&":  # a tag or an anchor, then the value proper
        if wanted:
            prefix, _, after = value.partition(" ")
            if prefix == "!function" and after.strip():
                return _plain_scalar(after.lstrip(" "))  # lm-eval keeps the reference unresolved here
            raise _NeedsParser
        properties = _PROPERTIES.match(value)
        if properties is None or value[properties.end() : properties.end() + 1] in ("!", "&"):
            raise _NeedsParser
        return _inline_value(value[properties.end() :], wanted)
    if first == '"':
        quoted = _DOUBLE_QUOTED.match(value)
        if quoted is None:
            return _open_quote(wanted)
        _expect_line_end(value, quoted.end())
        if not wanted:
            return _ONE_LINE
        if "\\" in quoted.group(1):
            raise _NeedsParser  # escapes: let PyYAML decode them
        return quoted.group(1)
    if first == "'":
        quoted = _SINGLE_QUOTED.match(value)
        if quoted is None:
            return _open_quote(wanted)
        _expect_line_end(value, quoted.end())
        return quoted.group(1).replace("''", "'") if wanted else _ONE_LINE
    if first in "[{":
        end = _flow_end(value)
        if end is None:
            raise _NeedsParser
        _expect_line_end(value, end)
        if not wanted:
            return _ONE_LINE
        if first == "{":
            raise _NeedsParser
        return _flow_list(value[1 : end - 1])
    if first in "|>" and not wanted:
        if _BLOCK_SCALAR_HEADER.match(value) is None:
            raise _NeedsParser
        return _BLOCK_SCALAR
    if first in "|>*":  # block scalars for index keys, and aliases (their anchor may be missing)
        raise _NeedsParser
    scalar = _plain_scalar(value)
    if not wanted:
        return _ONE_LINE if " #" in value else _PLAIN  # a comment ends a plain scalar
    if not _loads_as_string(scalar):
        raise _NeedsParser  # a number, bool, null or date: PyYAML's type for it decides
    return scalar


def _check_lines_after(value: object, rest: str, text: str, start: int, end: int) -> None:
    """Hand the file to the parser unless the indented lines in text[start:end] fit the key's value."""
    if value is _OPEN_QUOTE:
        if not _quote_closes_before(rest, text[start:end]):
            raise _NeedsParser
    # Indented lines after a one-line value are invalid; after a plain scalar they may carry it on.
    elif _CONTENT_LINE.search(text, start, end) is not None and (
        value is _ONE_LINE or not _continues_plain_scalar(text[start:end])
    ):
        raise _NeedsParser


def _continues_plain_scalar(following: str) -> bool:
    """Whether the indented lines `following` a plain scalar carry it on: no key, no comment before."""
    comment_seen = False
    for line in following.split("\n"):
        text = line.strip(" \r")
        if not text:
            continue
        if text[0] == "#":
            comment_seen = True
        elif comment_seen or "\t" in line or ": " in text or " #" in text or text.endswith(":"):
            return False
    return True


def _open_quote(wanted: bool) -> object:
    if wanted:
        raise _NeedsParser  # an index key written over several lines: let PyYAML fold it
    return _OPEN_QUOTE


def _quote_closes_before(value: str, following: str) -> bool:
    """Whether the quoted scalar opened in `value` ends within the indented lines `following` it.

    PyYAML writes long quoted scalars over indented lines; one that is still open at the next column-0
    line may carry on over it, which only the parser can sort out.
    """
    start = min(position for position in (value.find('"'), value.find("'")) if position >= 0)
    scalar = value[start:] + following
    quoted = (_DOUBLE_QUOTED if scalar[0] == '"' else _SINGLE_QUOTED).match(scalar)
    return quoted is not None and not _has_content(scalar[quoted.end() :])


def _plain_scalar(value: str) -> str:
    first = value[0]
    if first in _PLAIN_START_INDICATORS and not (first in "-?:" and len(value) > 1 and value[1] != " "):
        raise _NeedsParser
    comment = value.find(" #")
    scalar = (value if comment < 0 else value[:comment]).rstrip()
    if ": " in scalar or scalar.endswith(":"):
        raise _NeedsParser  # "mapping values are not allowed here"
    return scalar


@functools.lru_cache(maxsize=8192)  # the same include and tag names come back thousands of times
def _loads_as_string(scalar: str) -> bool:
    resolvers = yaml.resolver.Resolver.yaml_implicit_resolvers.get(scalar[0], [])
    return not any(pattern.match(scalar) for _, pattern in resolvers)


def _expect_line_end(value: str, end: int) -> None:
    tail = value[end:]
    if tail.strip() and not (tail[0] == " " and tail.lstrip(" ").startswith("#")):
        raise _NeedsParser


def _flow_end(value: str) -> int | None:
    """The index just past the bracket closing the flow collection that starts `value`, if on this line."""
    depth = 0
    quote = ""
    position = 0
    while position < len(value):
        char = value[position]
        if quote:
            if char == "\\" and quote == '"':
                position += 1
            elif char == quote:
                if quote == "'" and value[position + 1 : position + 2] == "'":
                    position += 1
                else:
                    quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return position + 1
        elif char == "#" and value[position - 1] == " ":
            return None  # a comment: the collection continues on the next line
        position += 1
    return None


def _flow_list(inner: str) -> list[object]:
    parts = inner.split(",")
    if not parts[-1].strip():
        parts.pop()  # "[]" or a trailing comma
    items: list[object] = []
    for part in parts:
        item = part.strip()
        if not item or any(char in item for char in ":#[]{}"):
            raise _NeedsParser
        if item[0] in "\"'":
            quoted = (_DOUBLE_QUOTED if item[0] == '"' else _SINGLE_QUOTED).fullmatch(item)
            if quoted is None or "\\" in item or "''" in item:
                raise _NeedsParser
            items.append(quoted.group(1))
        elif item[0] in _PLAIN_START_INDICATORS or not _loads_as_string(item):
            raise _NeedsParser
        else:
            items.append(item)
    return items


def _has_content(block: str) -> bool:
    """Whether `block` has a line that is neither blank nor only a comment."""
    return _CONTENT_LINE.search(block) is not None


_CONTENT_LINE = re.compile(r"^[ \r]*[^ \r\n#]", re.MULTILINE)


def _content_lines(block: str) -> list[tuple[int, str]]:
    """(indent, text) of each line of `block` that is neither blank nor only a comment."""
    if not block.strip():
        return []
    lines = []
    for raw in block.split("\n"):
        text = raw.strip(" \r")
        if text and text[0] != "#":
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise _NeedsParser
            lines.append((len(raw) - len(raw.lstrip(" ")), text))
    return lines


def _block_value(block: str, key: str) -> object:
    """The value of an index key written on the lines below it: a block list, or left to the parser."""
    lines = _content_lines(block)
    if not lines:
        return None
    indent, first = lines[0]
    if key == "class" or not _is_list_item(first):
        raise _NeedsParser  # a nested mapping or a multi-line scalar
    if key == "task":
        return []  # a group's task list: the index needs only to know that it is a list
    items: list[object] = []
    for line_indent, text in lines:
        if line_indent != indent or not text.startswith("- "):
            raise _NeedsParser  # nested or multi-line items
        item = _inline_value(text[2:].lstrip(" "), wanted=True)
        if item is _BLOCK:
            raise _NeedsParser
        items.append(item)
    return items


class _IndexLoader(_SafeLoader):
    """PyYAML's safe loader that reads `!function x.y` (and any other tag) as the plain value.

    Unknown tags make lm-eval skip a file; they are accepted here so a file's names do not depend on
    whether the line reader (which never sees tags on indented values) or the parser read it.
    """


def _construct_untagged(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_IndexLoader.add_constructor(None, _construct_untagged)


def _parsed_keys(data: bytes) -> Keys:
    try:
        loaded = yaml.load(data, Loader=_IndexLoader)  # a safe loader
    except yaml.YAMLError as error:
        raise UnreadableYaml(f"invalid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(loaded, dict):
        raise UnreadableYaml(f"not a YAML mapping (a {type(loaded).__name__})")
    return {key: value for key, value in loaded.items() if key in INDEX_KEYS}
