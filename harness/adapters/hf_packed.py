"""Multiple-choice scoring with shared few-shot prefixes and packed options, one forward pass per batch.

lm-eval runs every (context, continuation) pair as its own full sequence. Here:
- Contexts that begin with the same TOKENS (an MMLU subject's first_n few-shot examples: every question of
  the subject starts with the same five) share one encoding of that prefix: its keys and values are
  computed once, kept for the next calls (the runner sends a task's requests in chunks), and every
  context then runs only its own suffix on top of them. The prefix is a prefix of the token sequences
  lm-eval's tokenisation gives, never of the strings, so each context's tokens are exactly lm-eval's.
- A context's continuations ride in the same row as the context: [suffix, option 1, option 2, ...], with
  an attention mask that lets each option see the prefix, the suffix and its own earlier tokens only, and
  position ids that restart after the context for every option. One forward pass then scores a batch of
  contexts with all their options, with no copies of keys and values per option.
- Only the scored positions go through the output projection and log-softmax.

The mask is a custom 4D mask, which transformers passes to the attention as it is. Whether a model honours
it is checked once per model against plain full-sequence scoring (`packing_supported`); models that do
not (or that need another kind of mask: sliding windows, flash attention kernels) use
`hf_scoring.score_shared_contexts`.
"""

from __future__ import annotations

import copy
import itertools
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.adapters.hf_scoring import (
    HEAD_CHUNK,
    ContextGroup,
    Progress,
    TokenIds,
    TokenScore,
    _cache_keyword,
    _output_cache,
    _score_positions,
    _split_head,
)

# A shared prefix gets batches of its own only when it saves at least this many tokens of forward pass.
MIN_PREFIX_SAVING = 256
# Rows of one batch hold at most batch_size * this many tokens (a long few-shot context with four options
# fills a row with ~700).
TOKENS_PER_ROW = 1024
# Keys/values of at most this many prefix tokens are kept between calls (~50 KB a token for a 135M model).
MEMO_TOKENS = 4096

_SUPPORTED: weakref.WeakKeyDictionary[torch.nn.Module, bool] = weakref.WeakKeyDictionary()


def _common_length(a: TokenIds, b: TokenIds) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index


def plan_prefixes(
    contexts: Sequence[TokenIds], min_saving: int = MIN_PREFIX_SAVING
) -> list[tuple[int, list[int]]]:
    """Clusters of context indices with the length of the token prefix their members share (0: none).

    Contexts sorted by their tokens put those with long common prefixes side by side; a cluster grows while
    the tokens it saves ((members - 1) * prefix) do not shrink. Every member keeps at least its last token
    outside the prefix, since that position predicts the first continuation token.
    """
    if not contexts:
        return []
    order = sorted(range(len(contexts)), key=lambda i: contexts[i])
    found: list[tuple[int, list[int]]] = []
    members = [order[0]]
    shared = len(contexts[order[0]]) - 1
    for previous, index in itertools.pairwise(order):
        candidate = min(shared, _common_length(contexts[previous], contexts[index]), len(contexts[index]) - 1)
        if candidate > 0 and candidate * len(members) >= shared * (len(members) - 1):
            members.append(index)
            shared = candidate
        else:
            found.append((shared, members))
            members, shared = [index], len(contexts[index]) - 1
    found.append((shared, members))
    return [
        (shared if (len(members) - 1) * shared >= min_saving else 0, members) for shared, members in found
    ]


# -- model calls --------------------------------------------------------------------------------------------


def _run_base(
    base: torch.nn.Module,
    input_ids: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    cache: Any = None,
    keep_cache: bool = False,
) -> tuple[torch.Tensor, Any]:
    kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": keep_cache or cache is not None}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    if cache is not None:
        kwargs[_cache_keyword(base)] = cache
    output = base(**kwargs)
    return output.last_hidden_state, (_output_cache(output) if keep_cache else None)


def _weights_key(model: torch.nn.Module) -> tuple[Any, ...] | None:
    """Changes whenever the weights may have: moved, replaced or updated in place (an optimizer step)."""
    try:
        return (id(model), *((p.data_ptr(), p._version) for p in model.parameters()))
    except RuntimeError:  # inference tensors track no version: nothing can be kept
        return None


class PrefixMemo:
    """Keys and values of recently encoded shared prefixes (batch of one), for the model's current weights."""

    def __init__(self, max_tokens: int = MEMO_TOKENS) -> None:
        self.max_tokens = max_tokens
        self._entries: list[tuple[TokenIds, Any]] = []
        self._weights: tuple[Any, ...] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries = []

    def known_length(self, tokens: TokenIds) -> int:
        """How many leading tokens of `tokens` a stored prefix holds."""
        return max((_common_length(known, tokens) for known, _ in self._entries), default=0)

    def cache_for(
        self, model: torch.nn.Module, base: torch.nn.Module, tokens: TokenIds, device: torch.device
    ) -> Any:
        """A cache holding `tokens`' keys and values; shared with the memo, so copy it before use."""
        weights = _weights_key(model)
        if weights is None or weights != self._weights:
            self._entries = []
            self._weights = weights
        best_length, best = 0, None
        for position, (known, _) in enumerate(self._entries):
            length = _common_length(known, tokens)
            if length > best_length:
                best_length, best = length, position
        if best is not None and best_length == len(tokens) == len(self._entries[best][0]):
            entry = self._entries.pop(best)
            self._entries.append(entry)  # most recently used last
            return entry[1]
        cache = None
        # Copying a stored prefix and cutting it back pays when a good part of it is kept.
        if best is not None and 4 * best_length >= len(self._entries[best][0]):
            known, stored = self._entries[best]
            cache = copy.deepcopy(stored)
            if best_length < len(known):
                cache.crop(best_length - len(known))
        else:
            best_length = 0
        if best_length < len(tokens):
            rest = torch.tensor([tokens[best_length:]], dtype=torch.long, device=device)
            positions = torch.arange(best_length, len(tokens), device=device).unsqueeze(0)
            _, cache = _run_base(base, rest, position_ids=positions, cache=cache, keep_cache=True)
        if weights is not None and len(tokens) <= self.max_tokens:
            self._entries.append((tokens, cache))
            while sum(len(known) for known, _ in self._entries) > self.max_tokens:
                self._entries.pop(0)
        return cache


# -- packed rows --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    group: int
    suffix: TokenIds  # the context after the shared prefix: at least one token
    options: tuple[TokenIds, ...]
    first_option: int = 0  # index of options[0] among the group's continuations

    @classmethod
    def split(cls, group: int, suffix: TokenIds, options: Sequence[TokenIds]) -> list[_Row]:
        """One row for the context and its options, or several (each repeating the suffix) when the options
        alone would make a row longer than TOKENS_PER_ROW."""
        rows: list[_Row] = []
        start, size = 0, 0
        for index, option in enumerate(options):
            if index > start and size + len(option) - 1 > TOKENS_PER_ROW:
                rows.append(cls(group, suffix, tuple(options[start:index]), start))
                start, size = index, 0
            size += len(option) - 1
        rows.append(cls(group, suffix, tuple(options[start:]), start))
        return rows

    @property
    def length(self) -> int:
        return len(self.suffix) + sum(len(option) - 1 for option in self.options)


def _batches(rows: list[_Row], batch_size: int, prefix_length: int = 0) -> list[list[_Row]]:
    """Longest rows first; at most batch_size rows a batch, and batch_size * TOKENS_PER_ROW tokens of keys
    and values (the shared prefix is copied into every row of a batch)."""
    rows = sorted(rows, key=lambda row: -row.length)
    budget = batch_size * TOKENS_PER_ROW
    batches: list[list[_Row]] = []
    for row in rows:
        current = batches[-1] if batches else []
        if (
            current
            and len(current) < batch_size
            and (len(current) + 1) * (prefix_length + current[0].length) <= budget
        ):
            current.append(row)
        else:
            batches.append([row])
    return batches


def _run_rows(
    base: torch.nn.Module,
    head: torch.nn.Linear,
    rows: Sequence[_Row],
    prefix_length: int,
    prefix_cache: Any,
    device: torch.device,
) -> list[list[TokenScore]]:
    """Scores of every option of every row, from one forward pass over [suffix, option inputs...] per row.

    One pass rather than a pass for the contexts and another for the options: on a CPU shared with other
    work, every operator of a pass waits for the slower of its threads, so fewer passes win there.
    """
    count = len(rows)
    width = max(row.length for row in rows)
    input_ids = torch.zeros((count, width), dtype=torch.long)
    positions = torch.full((count, width), prefix_length, dtype=torch.long)
    visible = torch.zeros((count, width, width), dtype=torch.bool)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    picked_rows: list[int] = []
    picked_columns: list[int] = []
    targets: list[int] = []
    counts: list[int] = []
    packed_options = False
    for r, row in enumerate(rows):
        size = len(row.suffix)
        input_ids[r, :size] = torch.tensor(row.suffix, dtype=torch.long)
        positions[r, :size] = torch.arange(prefix_length, prefix_length + size)
        visible[r, :size, :size] = causal[:size, :size]
        start = size
        for option in row.options:
            inputs = len(option) - 1
            # The option's first token is predicted by the context's last position, the rest by its own.
            picked_rows.extend([r] * len(option))
            picked_columns.extend([size - 1, *range(start, start + inputs)])
            targets.extend(option)
            counts.append(len(option))
            if inputs:
                packed_options = True
                end = start + inputs
                input_ids[r, start:end] = torch.tensor(option[:-1], dtype=torch.long)
                positions[r, start:end] = torch.arange(prefix_length + size, prefix_length + size + inputs)
                visible[r, start:end, :size] = True
                visible[r, start:end, start:end] = causal[:inputs, :inputs]
            start = start + inputs
        # Padding sees itself only (a query that sees nothing gives NaNs), and no real query sees it.
        visible[r, range(start, width), range(start, width)] = True

    cache = None
    if prefix_length:
        cache = copy.deepcopy(prefix_cache)
        if count > 1:
            cache.batch_repeat_interleave(count)
    if prefix_length or packed_options:
        seen = torch.cat([torch.ones((count, width, prefix_length), dtype=torch.bool), visible], dim=-1)
        dtype = next(base.parameters()).dtype
        mask = torch.zeros(seen.shape, dtype=dtype).masked_fill_(~seen, torch.finfo(dtype).min)
        hidden, _ = _run_base(
            base,
            input_ids.to(device),
            attention_mask=mask.unsqueeze(1).to(device),
            position_ids=positions.to(device),
            cache=cache,
        )
    else:
        # Right-padded contexts alone: the model's own causal attention (its fastest kernel) is exact, as
        # padding comes after every real token.
        hidden, _ = _run_base(base, input_ids.to(device))
    del cache
    selected = hidden[torch.tensor(picked_rows, device=device), torch.tensor(picked_columns, device=device)]
    target_ids = torch.tensor(targets, dtype=torch.long, device=device)
    values, greedy = [], []
    for start in range(0, selected.shape[0], HEAD_CHUNK):
        chunk_values, chunk_greedy = _score_positions(
            head(selected[start : start + HEAD_CHUNK]), target_ids[start : start + HEAD_CHUNK]
        )
        values.append(chunk_values)
        greedy.append(chunk_greedy)
    all_values, all_greedy = torch.cat(values).cpu(), torch.cat(greedy).cpu()
    scores: list[list[TokenScore]] = [[] for _ in rows]
    offset = 0
    option_rows = [r for r, row in enumerate(rows) for _ in row.options]
    for r, size in zip(option_rows, counts, strict=True):
        part = slice(offset, offset + size)
        scores[r].append(TokenScore(float(all_values[part].sum()), bool(all_greedy[part].all())))
        offset += size
    return scores


def packing_supported(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether this model scores packed rows (custom 4D masks, shared prefixes) as it scores full sequences.

    Checked once per model on a few tokens; models whose attention needs more than one mask (sliding
    windows, hybrid layers) or a kernel without arbitrary masks are not tried at all.
    """
    known = _SUPPORTED.get(model)
    if known is not None:
        return known
    supported = _probe(model, device)
    _SUPPORTED[model] = supported
    return supported


def _probe(model: torch.nn.Module, device: torch.device) -> bool:
    parts = _split_head(model)
    config = getattr(model, "config", None)
    if parts is None or config is None:
        return False
    if getattr(config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return False
    layer_types = getattr(config, "layer_types", None) or ()
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    if any(kind != "full_attention" for kind in layer_types):
        return False
    base, head = parts
    vocabulary = head.weight.shape[0]
    tokens = [(7 + 13 * i) % vocabulary for i in range(12)]
    prefix, contexts = tuple(tokens[:4]), [tuple(tokens[:7]), tuple(tokens[:5])]
    options = [(tuple(tokens[7:10]), tuple(tokens[10:11])), (tuple(tokens[9:12]),)]
    pairs = [(i, j) for i in range(2) for j in range(len(options[i]))]
    threads = torch.get_num_threads()
    try:
        # A few tokens: one thread is faster than waiting on a second (and much faster on a busy machine).
        torch.set_num_threads(1)
        with torch.inference_mode():
            cache = PrefixMemo().cache_for(model, base, prefix, device)
            rows = [_Row(i, contexts[i][len(prefix) :], options[i]) for i in range(2)]
            packed = _run_rows(base, head, rows, len(prefix), cache, device)
            # The reference: each full sequence, right-padded, under the model's own causal attention.
            sequences = [contexts[i] + options[i][j] for i, j in pairs]
            padded = [list(seq) + [0] * (max(map(len, sequences)) - len(seq)) for seq in sequences]
            log_probs = torch.log_softmax(
                model(input_ids=torch.tensor(padded, device=device)).logits.double(), -1
            )
        tolerance = 1e-3 if head.weight.dtype == torch.float32 else 5e-2
        for row, (i, j) in enumerate(pairs):
            start = len(contexts[i])
            reference = sum(float(log_probs[row, start + k - 1, t]) for k, t in enumerate(options[i][j]))
            found = packed[i][j].logprob
            if not math.isfinite(found) or abs(found - reference) > tolerance * max(1.0, abs(reference)):
                return False
    except Exception:  # any model that cannot run this falls back to the plain path
        return False
    finally:
        torch.set_num_threads(threads)
    return True


@torch.inference_mode()
def score_packed(
    model: torch.nn.Module,
    groups: Sequence[ContextGroup],
    *,
    batch_size: int,
    device: torch.device,
    memo: PrefixMemo | None = None,
    progress: Progress | None = None,
    min_prefix_saving: int = MIN_PREFIX_SAVING,
) -> list[list[TokenScore]]:
    """Scores for every continuation of every group, in the groups' order (needs `packing_supported`)."""
    parts = _split_head(model)
    assert parts is not None
    base, head = parts
    memo = memo if memo is not None else PrefixMemo()
    results: list[list[TokenScore | None]] = [[None] * len(group.continuations) for group in groups]
    plan = plan_prefixes([group.context for group in groups], min_prefix_saving)
    work: list[tuple[int, TokenIds, list[_Row]]] = []
    # Contexts that share nothing worth it with the others may still begin with a prefix kept from an
    # earlier call (the last few questions of a subject arrive on their own).
    by_prefix: dict[TokenIds, list[int]] = {}
    for length, members in plan:
        for i in members:
            context = groups[i].context
            known = length or min(memo.known_length(context), len(context) - 1)
            if length or known >= min_prefix_saving:
                by_prefix.setdefault(context[:known], []).append(i)
            else:
                by_prefix.setdefault((), []).append(i)
    for prefix, members in sorted(by_prefix.items(), key=lambda item: -len(item[0])):
        rows = [
            row
            for i in members
            for row in _Row.split(i, groups[i].context[len(prefix) :], groups[i].continuations)
        ]
        work.append((len(prefix), prefix, rows))
    for length, prefix, rows in work:
        cache = memo.cache_for(model, base, prefix, device) if length else None
        for batch in _batches(rows, batch_size, length):
            for row, scores in zip(batch, _run_rows(base, head, batch, length, cache, device), strict=True):
                results[row.group][row.first_option : row.first_option + len(scores)] = scores
            if progress is not None:
                tokens = sum(len(groups[row.group].context) + sum(map(len, row.options)) for row in batch)
                progress(sum(len(row.options) for row in batch), tokens)
    return [[score for score in scores if score is not None] for scores in results]
