"""`plain`: user text through a CommonMark renderer comes out as the same text, never as markup.

The reference is markdown-it-py (CommonMark, with GFM tables and strikethrough), installed with the
test tools (it is rich's Markdown parser). Rendering `plain(text)` must give only paragraphs, line
breaks (and, for a line indented four spaces, a code block, which also shows text as written), and
its text must be the input exactly.
"""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from harness.leaderboard.ui import plain

CASES = [
    "![x](http://203.0.113.9/x.png)",
    "[click](javascript:alert(1))",
    "<img src=http://203.0.113.9/i.png onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<https://203.0.113.9/auto>",
    "**bold** __bold__ *em* _em_ ~~gone~~",
    "# heading",
    "1. list",
    "- item",
    "+ item",
    "> quote",
    "---",
    "| a | b |\n|---|---|\n| c | d |",
    "`code` ``code``",
    "&amp; &#x41; &lt;",
    "$x^2$ and $$y$$",
    ":red[colour] :material/home: :smile:",
    "back\\slash\\*star",
    "[ref]: http://203.0.113.9/r.png",
    "line one\nline two\r\nline three",
    "model-7b · sft@100 · 20260101T000000-abcd1234",
    "Ünïcödé ✓ 模型",
    "    four spaces then text",
]
_ALLOWED_TAG = re.compile(r"</?(p|br ?/?|pre|code)>")


@pytest.mark.parametrize("text", CASES)
def test_plain_text_renders_as_itself(text: str) -> None:
    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(plain(text))
    tags = set(re.findall(r"<[^>]+>", rendered))
    assert all(_ALLOWED_TAG.fullmatch(tag) for tag in tags), tags
    shown = html.unescape(_ALLOWED_TAG.sub("", rendered))
    expected = text.replace("\r\n", "\n")
    assert " ".join(shown.split()) == " ".join(expected.split())
