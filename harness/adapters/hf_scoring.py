"""Batched log-likelihood scoring for causal language models (pure torch, no tokenizer).

Two paths:
- `score_windows`: each item is a full input sequence whose last positions are scored (perplexity
  windows, or continuations too long for the model's context). Items are sorted by length so batches
  carry little padding.
- `score_shared_contexts`: many continuations after one context (multiple-choice options). Each context
  runs once; its keys/values are then reused for every continuation, and only the positions that are
  scored go through the output projection and log-softmax (a large share of the work with a 49k vocab).
  The hf adapter uses it for models that `hf_packed` (shared few-shot prefixes, options packed into the
  context's row) cannot serve.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.adapters.sharded import is_sharded_model

TokenIds = tuple[int, ...]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ScoringWindow:
    """`inputs` go through the model; the last len(targets) positions predict `targets`."""

    inputs: TokenIds
    targets: TokenIds


@dataclass(frozen=True)
class TokenScore:
    logprob: float
    is_greedy: bool


# Positions per output-projection chunk: the logits of one chunk (~100 MB with a 49k vocabulary) stay
# small enough to reduce right away instead of materialising the whole batch's logits.
HEAD_CHUNK = 512


def _cache_keyword(module: torch.nn.Module) -> str:
    """transformers 5 renamed the `past_key_values` argument to `cache` (the old name warns, then fails)."""
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in parameters else "past_key_values"


def _output_cache(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _split_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Linear] | None:
    """The decoder and a plain linear output projection, or None when the model post-processes logits
    or is sharded (an FSDP model gathers its weights only when called whole)."""
    if is_sharded_model(model):
        return None
    config = getattr(model, "config", None)
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None) not in (
        None,
        1.0,
    ):
        return None
    base = getattr(model, "base_model", None)
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if base is None or base is model or not isinstance(head, torch.nn.Linear):
        return None
    return base, head


def _kept_scores(
    model: torch.nn.Module,
    keep: torch.Tensor,
    targets: torch.Tensor,
    need_greedy: bool,
    **model_inputs: torch.Tensor | object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target log-probabilities (and greedy flags) at the `keep` positions, flattened in row order."""
    parts = _split_head(model)
    if parts is None:
        if "past_key_values" in model_inputs:
            model_inputs[_cache_keyword(model)] = model_inputs.pop("past_key_values")
        try:
            logits = model(**model_inputs, logits_to_keep=keep, use_cache=False).logits
            if logits.dim() == 3:
                logits = logits[keep]
        except TypeError:
            logits = model(**model_inputs, use_cache=False).logits[keep]
        return _score_positions(logits, targets, need_greedy)
    base, head = parts
    if "past_key_values" in model_inputs:
        model_inputs[_cache_keyword(base)] = model_inputs.pop("past_key_values")
    hidden = base(**model_inputs, use_cache=False).last_hidden_state[keep]
    values, greedy = [], []
    for start in range(0, hidden.shape[0], HEAD_CHUNK):
        chunk_values, chunk_greedy = _score_positions(
            head(hidden[start : start + HEAD_CHUNK]), targets[start : start + HEAD_CHUNK], need_greedy
        )
        values.append(chunk_values)
        greedy.append(chunk_greedy)
    return torch.cat(values), torch.cat(greedy)


def _score_positions(
    logits: torch.Tensor, targets: torch.Tensor, need_greedy: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position target log-probability and whether the target was the argmax."""
    logits = logits.float()
    log_normaliser = torch.logsumexp(logits, dim=-1)
    target_logits = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    greedy = logits.argmax(dim=-1) == targets if need_greedy else torch.zeros_like(targets, dtype=torch.bool)
    return (target_logits - log_normaliser).double(), greedy


def _sum_per_item(values: torch.Tensor, greedy: torch.Tensor, lengths: Sequence[int]) -> list[TokenScore]:
    scores = []
    for part_values, part_greedy in zip(
        torch.split(values, list(lengths)), torch.split(greedy, list(lengths)), strict=True
    ):
        scores.append(TokenScore(float(part_values.sum()), bool(part_greedy.all())))
    return scores


@torch.inference_mode()
def score_windows(
    model: torch.nn.Module,
    windows: Sequence[ScoringWindow],
    *,
    batch_size: int,
    device: torch.device,
    progress: Progress | None = None,
    need_greedy: bool = True,
) -> list[TokenScore]:
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i].inputs))
    results: list[TokenScore | None] = [None] * len(windows)
    for start in range(0, len(order), batch_size):
        batch = [windows[i] for i in order[start : start + batch_size]]
        width = max(len(window.inputs) for window in batch)
        # Right padding: a causal model's real positions never attend to the padding after them.
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        keep = torch.zeros((len(batch), width), dtype=torch.bool)
        targets: list[int] = []
        for row, window in enumerate(batch):
            input_ids[row, : len(window.inputs)] = torch.tensor(window.inputs, dtype=torch.long)
            keep[row, len(window.inputs) - len(window.targets) : len(window.inputs)] = True
            targets.extend(window.targets)
        values, greedy = _kept_scores(
            model,
            keep.to(device),
            torch.tensor(targets, dtype=torch.long, device=device),
            need_greedy,
            input_ids=input_ids.to(device),
        )
        for index, score in zip(
            order[start : start + batch_size],
            _sum_per_item(values.cpu(), greedy.cpu(), [len(w.targets) for w in batch]),
            strict=True,
        ):
            results[index] = score
        if progress is not None:
            progress(len(batch), sum(len(window.inputs) for window in batch))
    return [score for score in results if score is not None]


@dataclass(frozen=True)
class ContextGroup:
    context: TokenIds
    continuations: tuple[TokenIds, ...]


def _run_contexts(
    model: torch.nn.Module, contexts: Sequence[TokenIds], device: torch.device
) -> tuple[torch.Tensor, object, torch.Tensor]:
    """Left-padded contexts in one forward pass: last-position logits, the cache and the padding mask."""
    width = max(len(context) for context in contexts)
    input_ids = torch.zeros((len(contexts), width), dtype=torch.long)
    mask = torch.zeros((len(contexts), width), dtype=torch.long)
    for row, context in enumerate(contexts):
        input_ids[row, width - len(context) :] = torch.tensor(context, dtype=torch.long)
        mask[row, width - len(context) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    output = model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        logits_to_keep=1,
    )
    return output.logits[:, -1, :], _output_cache(output), mask


@torch.inference_mode()
def score_shared_contexts(
    model: torch.nn.Module,
    groups: Sequence[ContextGroup],
    *,
    batch_size: int,
    device: torch.device,
    progress: Progress | None = None,
) -> list[list[TokenScore]]:
    """Scores for every continuation of every group, in the groups' order."""
    order = sorted(range(len(groups)), key=lambda i: -len(groups[i].context))
    results: list[list[TokenScore]] = [[] for _ in groups]
    for start in range(0, len(order), batch_size):
        batch_indices = order[start : start + batch_size]
        batch = [groups[i] for i in batch_indices]
        last_logits, cache, context_mask = _run_contexts(model, [g.context for g in batch], device)
        rows = [(g, c) for g, group in enumerate(batch) for c in group.continuations]
        first_targets = torch.tensor([c[0] for _, c in rows], dtype=torch.long, device=device)
        row_context = torch.tensor([g for g, _ in rows], dtype=torch.long, device=device)
        first_values, first_greedy = _score_positions(last_logits[row_context], first_targets)
        values: list[torch.Tensor] = [first_values[i : i + 1] for i in range(len(rows))]
        greedy: list[torch.Tensor] = [first_greedy[i : i + 1] for i in range(len(rows))]

        longer = [i for i, (_, c) in enumerate(rows) if len(c) > 1]
        if longer:
            width = max(len(rows[i][1]) - 1 for i in longer)
            option_ids = torch.zeros((len(longer), width), dtype=torch.long)
            option_mask = torch.zeros((len(longer), width), dtype=torch.long)
            keep = torch.zeros((len(longer), width), dtype=torch.bool)
            targets: list[int] = []
            for row, i in enumerate(longer):
                continuation = rows[i][1]
                option_ids[row, : len(continuation) - 1] = torch.tensor(continuation[:-1], dtype=torch.long)
                option_mask[row, : len(continuation) - 1] = 1
                keep[row, : len(continuation) - 1] = True
                targets.extend(continuation[1:])
            select = torch.tensor([rows[i][0] for i in longer], dtype=torch.long)
            context_lengths = context_mask.sum(-1)[select]
            positions = context_lengths.unsqueeze(-1) + torch.arange(width).unsqueeze(0)
            cache.batch_select_indices(select.to(device))  # type: ignore[attr-defined]
            attention = torch.cat([context_mask[select], option_mask], dim=-1)
            rest_values, rest_greedy = _kept_scores(
                model,
                keep.to(device),
                torch.tensor(targets, dtype=torch.long, device=device),
                True,
                input_ids=option_ids.to(device),
                attention_mask=attention.to(device),
                position_ids=positions.to(device),
                past_key_values=cache,
            )
            offset = 0
            for i in longer:
                count = len(rows[i][1]) - 1
                values[i] = torch.cat([values[i], rest_values[offset : offset + count]])
                greedy[i] = torch.cat([greedy[i], rest_greedy[offset : offset + count]])
                offset += count
        for (g, _), row_values, row_greedy in zip(rows, values, greedy, strict=True):
            results[batch_indices[g]].append(TokenScore(float(row_values.sum()), bool(row_greedy.all())))
        if progress is not None:
            tokens = sum(len(g.context) + sum(len(c) for c in g.continuations) for g in batch)
            progress(sum(len(g.continuations) for g in batch), tokens)
    return results
