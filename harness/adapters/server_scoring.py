"""Continuation scores from a server's prompt logprobs, in the two shapes OpenAI-compatible servers send.

- vLLM's `prompt_logprobs` (an extra /completions parameter): each choice carries one entry per prompt
  token, `null` for the first, else `{token_id: {logprob, rank, decoded_token}}` holding the prompt token
  (with `prompt_logprobs: 0`, only it). The rank says whether the token was the greedy choice.
- Completions `echo: true` with `logprobs`: the choice's `logprobs` lists the prompt's (and the generated)
  tokens with `token_logprobs`, `top_logprobs` and `text_offset` (vLLM, SGLang, llama.cpp, OpenAI's
  legacy models).
Without a local tokenizer, a prompt token belongs to the continuation when it carries text from the
continuation's first character on: a token straddling the boundary (a context's trailing space merged
into " word") counts, as the server's tokenisation of the whole text decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from harness.requests import LoglikelihoodResult


class ScoringError(ValueError):
    """The reply cannot be read as prompt logprobs; the message says why, on one line."""


@dataclass(frozen=True)
class PromptToken:
    begin: int  # character offsets into the echoed text
    end: int
    logprob: float | None  # None: the first token, which nothing conditions
    is_greedy: bool


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def tokens_from_prompt_logprobs(choice: Mapping[str, Any], prompt: str) -> list[PromptToken] | None:
    """The prompt's tokens from vLLM's `prompt_logprobs`; None when the choice has none."""
    entries = choice.get("prompt_logprobs")
    if not isinstance(entries, list) or not entries:
        return None
    token_ids = choice.get("prompt_token_ids")
    texts: list[str] = []
    scored: list[tuple[float | None, bool]] = []
    for index, entry in enumerate(entries):
        if entry is None:
            if index:
                raise ScoringError(f"prompt_logprobs has no entry for prompt token {index}")
            texts.append("")  # its text is whatever the other tokens leave over, found below
            scored.append((None, True))
            continue
        if not isinstance(entry, dict) or not entry:
            raise ScoringError(f"prompt_logprobs entry {index} is not a mapping of token ids")
        if len(entry) == 1:
            item = next(iter(entry.values()))
        elif isinstance(token_ids, list) and index < len(token_ids):
            item = entry.get(str(token_ids[index]))
        else:
            raise ScoringError(
                "prompt_logprobs lists several tokens per position without prompt_token_ids; "
                "ask for prompt_logprobs=0"
            )
        logprob = _number(item.get("logprob")) if isinstance(item, dict) else None
        text = item.get("decoded_token") if isinstance(item, dict) else None
        if logprob is None or not isinstance(text, str):
            raise ScoringError(f"prompt_logprobs entry {index} has no logprob and decoded_token")
        rank = item.get("rank") if isinstance(item, dict) else None
        if isinstance(rank, int) and not isinstance(rank, bool):
            greedy = rank == 1
        else:
            others = [_number(v.get("logprob")) for v in entry.values() if isinstance(v, dict)]
            greedy = logprob >= max(v for v in others if v is not None) - 1e-6
        texts.append(text)
        scored.append((logprob, greedy))
    rest = sum(len(text) for text in texts[1:])
    if rest > len(prompt) or not prompt.endswith("".join(texts[1:])):
        raise ScoringError("the server's decoded prompt tokens do not add up to the prompt text")
    texts[0] = prompt[: len(prompt) - rest] if entries[0] is None else texts[0]
    offsets = [0, *accumulate(len(text) for text in texts)]
    return [
        PromptToken(offsets[i], offsets[i + 1], logprob, greedy) for i, (logprob, greedy) in enumerate(scored)
    ]


def tokens_from_echo(choice: Mapping[str, Any], prompt: str) -> list[PromptToken] | None:
    """The echoed tokens from completions `logprobs` (echo=true); None when the reply has no echo."""
    logprobs, text = choice.get("logprobs"), choice.get("text")
    if not isinstance(logprobs, dict) or not isinstance(text, str) or not text.startswith(prompt):
        return None
    tokens, offsets = logprobs.get("tokens"), logprobs.get("text_offset")
    values, tops = logprobs.get("token_logprobs"), logprobs.get("top_logprobs")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        return None
    if not isinstance(values, list) or len(values) < len(tokens):
        return None
    if offsets is None:  # some servers omit offsets; echoed tokens then add up to the text
        offsets = [0, *accumulate(len(token) for token in tokens[:-1])]
    if not isinstance(offsets, list) or len(offsets) != len(tokens):
        return None
    ends = [*offsets[1:], offsets[-1] + len(tokens[-1])] if tokens else []
    result = []
    for index, (begin, end) in enumerate(zip(offsets, ends, strict=True)):
        value = _number(values[index])
        top = tops[index] if isinstance(tops, list) and index < len(tops) else None
        if value is None:
            if index == 0 and values[index] is None:
                result.append(PromptToken(begin, end, None, True))
                continue
            raise ScoringError(f"/completions returned no logprob for token {index}")
        if not isinstance(top, dict) or not top:
            raise ScoringError(f"/completions returned no top_logprobs for token {index}")
        best = max(float(v) for v in top.values() if _number(v) is not None)
        result.append(PromptToken(begin, end, value, value >= best - 1e-6))
    return result


def continuation_score(tokens: Sequence[PromptToken], prompt: str, start: int) -> LoglikelihoodResult:
    """Sum the logprobs of the prompt tokens that carry text from `start` on (the continuation).

    Tokens at or after the end of the prompt were generated; the first token has nothing to be
    conditioned on and is left out, as every server leaves it out.
    """
    total, greedy, count = 0.0, True, 0
    for token in tokens:
        if token.begin >= len(prompt) or token.end <= start or token.logprob is None:
            continue
        total += token.logprob
        count += 1
        greedy = greedy and token.is_greedy
    if count == 0:
        raise ScoringError(f"the server scored no token of the continuation {prompt[start:][:40]!r}")
    return LoglikelihoodResult(total, greedy, count)
