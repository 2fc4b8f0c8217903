"""Batched generation for the `hf` adapter: left-padded prompts, stop sequences, lm-eval's post-processing.

Rows of a batch that begin with the same tokens (few-shot examples, a system prompt, a chat template's
header) share that prefix: its keys and values are computed once, in a batch of one, kept between batches
and calls (`hf_packed.PrefixMemo`, shared with multiple-choice scoring), copied to every row, and each row
runs only its own suffix. A row is then laid out as [prefix, padding, suffix] instead of [padding, prefix,
suffix]: the attention mask hides the padding wherever it is, and the position ids generation derives from
the mask are the same, so every row sees the same tokens at the same positions as without sharing.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from harness.adapters.base import ProgressCallback
from harness.adapters.hf_packed import PrefixMemo, _common_length
from harness.adapters.hf_scoring import _cache_keyword, _split_head
from harness.adapters.sharded import is_sharded_model
from harness.requests import GenerationResult, GenerationSettings

# A batch shares its rows' common prefix only when the prefix saves at least this many tokens of prompt
# encoding across the batch: below that, copying keys and values costs about what it saves.
MIN_SHARED_TOKENS = 64


class LoadedModel(Protocol):
    """What generation needs of the `hf` adapter (`harness.adapters.hf.HFAdapter`, which calls in here)."""

    @property
    def model(self) -> Any: ...

    @property
    def tokenizer(self) -> Any: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def max_length(self) -> int: ...

    @property
    def device(self) -> torch.device: ...


class StopOnSequences(StoppingCriteria):
    """Marks a row done once its generated text contains any stop sequence."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_width: int, rows: int) -> None:
        self.tokenizer = tokenizer
        self.stops = [stop for stop in stops if stop]
        self.prompt_width = prompt_width
        self.done = torch.zeros(rows, dtype=torch.bool)
        # Decoding only a tail keeps the check cheap; a stop sequence spans at most a few tokens.
        self.tail = (
            max((len(tokenizer.encode(stop, add_special_tokens=False)) for stop in self.stops), default=1) + 2
        )

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_width :]
        tails = self.tokenizer.batch_decode(generated[:, -self.tail :])
        for row, text in enumerate(tails):
            if not self.done[row] and any(stop in text for stop in self.stops):
                self.done[row] = True
        return self.done.clone().to(input_ids.device)  # type: ignore[return-value]


def _cut_at_stops(text: str, stops: Sequence[str]) -> str:
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


@torch.inference_mode()
def generate_batched(
    adapter: LoadedModel,
    prompts: Sequence[str],
    settings: Sequence[GenerationSettings],
    progress: ProgressCallback | None = None,
    memo: PrefixMemo | None = None,
) -> list[GenerationResult]:
    """Greedy or sampled generation for each prompt; `memo` keeps shared prefixes' keys and values."""
    tokenizer = adapter.tokenizer
    if tokenizer.pad_token_id is not None:
        return _generate(adapter, prompts, settings, progress, memo)
    # Batching needs a padding token; borrow EOS for the call and give the caller's tokenizer back as it was.
    tokenizer.pad_token = tokenizer.eos_token
    try:
        return _generate(adapter, prompts, settings, progress, memo)
    finally:
        tokenizer.pad_token = None


def _sharded_across_ranks(model: Any) -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    return dist.get_world_size() > 1 and is_sharded_model(model)


def _share_prefix(
    adapter: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, memo: PrefixMemo
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The batch laid out as [shared prefix, padding, suffix] with the prefix's keys and values, or the
    batch unchanged (and no cache) when its rows share too little."""
    rows = [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask, strict=True)]
    parts = _split_head(adapter.model)
    shared = min(len(row) for row in rows) - 1  # every row keeps a token to run: generation needs one
    for row in rows[1:]:
        shared = min(shared, _common_length(rows[0], row))
    if parts is None or len(rows) < 2 or shared * (len(rows) - 1) < MIN_SHARED_TOKENS:
        return input_ids, attention_mask, {}
    prefix = tuple(rows[0][:shared])
    cache = copy.deepcopy(memo.cache_for(adapter.model, parts[0], prefix, adapter.device))
    cache.batch_repeat_interleave(len(rows))
    width = input_ids.shape[1] - shared
    pad = adapter.tokenizer.pad_token_id
    laid_out, masks = [], []
    for row in rows:
        suffix = row[shared:]
        laid_out.append([*prefix, *[pad] * (width - len(suffix)), *suffix])
        masks.append([1] * shared + [0] * (width - len(suffix)) + [1] * len(suffix))
    device = input_ids.device
    return (
        torch.tensor(laid_out, dtype=input_ids.dtype, device=device),
        torch.tensor(masks, dtype=attention_mask.dtype, device=device),
        {_cache_keyword(adapter.model): cache},
    )


def _generate(
    adapter: LoadedModel,
    prompts: Sequence[str],
    settings: Sequence[GenerationSettings],
    progress: ProgressCallback | None,
    memo: PrefixMemo | None,
) -> list[GenerationResult]:
    tokenizer = adapter.tokenizer
    memo = memo if memo is not None else PrefixMemo()
    eos_text = tokenizer.decode([tokenizer.eos_token_id]) if tokenizer.eos_token_id is not None else None
    # Requests with equal settings share batches; longest prompts first, as lm-eval orders them.
    order = sorted(range(len(prompts)), key=lambda i: (repr(settings[i]), -len(prompts[i])))
    results: list[GenerationResult | None] = [None] * len(prompts)
    start = 0
    while start < len(order):
        first = settings[order[start]]
        batch = [i for i in order[start : start + adapter.batch_size] if settings[i] == first]
        start += len(batch)
        stops = list(first.stop)
        if eos_text and eos_text not in stops:
            stops.append(eos_text)
        max_prompt = max(1, adapter.max_length - first.max_tokens)
        previous_side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding="longest")
        finally:
            tokenizer.padding_side = previous_side
        input_ids = encoded["input_ids"][:, -max_prompt:].to(adapter.device)
        attention_mask = encoded["attention_mask"][:, -max_prompt:].to(adapter.device)
        cache: dict[str, Any] = {}
        if encoded["input_ids"].shape[1] <= max_prompt:  # a cut prompt no longer starts with the prefix
            input_ids, attention_mask, cache = _share_prefix(adapter, input_ids, attention_mask, memo)
        width = input_ids.shape[1]
        sampling: dict[str, Any] = {"do_sample": first.do_sample}
        if first.do_sample:
            sampling.update(temperature=first.temperature, top_p=first.top_p)
        else:
            sampling.update(temperature=None, top_p=None, top_k=None)
        seeded = first.do_sample and first.seed is not None
        # A model sharded across ranks: every rank keeps stepping until all are done, since each step's
        # forward gathers weights from all of them (should the ranks' outputs ever differ). Otherwise
        # transformers decides (it also syncs DeepSpeed ZeRO-3 models).
        lockstep = {"synced_gpus": True} if _sharded_across_ranks(adapter.model) else {}
        cuda = [adapter.device.index or 0] if adapter.device.type == "cuda" else []
        # A private random stream: a seeded request must not reset the caller's global generator.
        with torch.random.fork_rng(devices=cuda) if seeded else contextlib.nullcontext():
            if seeded:
                torch.manual_seed(int(first.seed or 0))
            output = adapter.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_length=width + first.max_tokens,
                stopping_criteria=StoppingCriteriaList(
                    [StopOnSequences(tokenizer, stops, width, len(batch))]
                ),
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
                **cache,
                **sampling,
                **lockstep,
            )
        new_tokens = 0
        for row, index in enumerate(batch):
            tokens = output[row, width:].tolist()
            # Rows that stopped early are padded to the batch's length; padding is not generated text.
            while tokens and tokens[-1] == tokenizer.pad_token_id:
                tokens.pop()
            text = _cut_at_stops(tokenizer.decode(tokens, skip_special_tokens=True), stops)
            results[index] = GenerationResult(text, len(tokens))
            new_tokens += len(tokens)
        if progress is not None:
            progress(len(batch), int(attention_mask.sum()) + new_tokens)
    return [result for result in results if result is not None]
