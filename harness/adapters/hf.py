"""`hf` adapter: transformers causal LMs from a local folder, a training checkpoint, a GGUF file, or memory.

Tokenisation follows lm-evaluation-harness's HF backend (0.4.13) exactly, so numbers match it: the
tokenizer's default special tokens, trailing context whitespace moved into the continuation,
continuation tokens cut from the encoding of context + continuation, the BOS (else EOS) token as the
prefix of an empty context and of the first perplexity window, and the same rolling windows.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.adapters.base import ProgressCallback
from harness.errors import HarnessError
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

DEFAULT_MAX_LENGTH = 2048
DTYPES = ("float32", "bfloat16", "float16", "auto")
MODEL_ARGS = frozenset({"dtype", "device", "batch_size", "max_length", "tokenizer", "name"})


def _resolve_max_length(model: Any, tokenizer: Any) -> int:
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None)
    for source in (text_config, config):
        for attribute in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(source, attribute, None) if source is not None else None
            if isinstance(value, int) and value > 0:
                return value
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000_000:
        return tokenizer_limit
    return DEFAULT_MAX_LENGTH


def _rolling_windows(
    tokens: Sequence[int], prefix_token: int, max_length: int
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Disjoint (inputs, targets) windows covering every token once, each with at most max_length inputs."""
    if not tokens:
        return []
    windows = []
    first = min(max_length, len(tokens))
    windows.append(((prefix_token, *tokens[: first - 1]), tuple(tokens[:first])))
    predicted = first
    while predicted < len(tokens):
        count = min(len(tokens) - predicted, max_length)
        end = predicted + count
        context = tokens[end - max_length - 1 : end - 1]
        targets = tokens[end - count : end]
        # The window input is the context with the last len(targets) - 1 tokens as inputs for the targets.
        windows.append((tuple(context), tuple(targets)))
        predicted += count
    return windows


class HFAdapter:
    """A transformers causal LM already in memory (the constructors below load one)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        batch_size: int = 8,
        weights_fingerprint: str | None = None,
        max_length: int | None = None,
    ) -> None:
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self._name = name
        self.batch_size = max(1, int(batch_size))
        self.device = next(model.parameters()).device
        self.max_length = int(max_length or _resolve_max_length(model, tokenizer))
        self._weights_fingerprint = weights_fingerprint
        self._fingerprint: str | None = None
        self._torch = torch
        bos = tokenizer.bos_token_id
        self.prefix_token_id: int = bos if bos is not None else tokenizer.eos_token_id
        self._prefix_text = tokenizer.decode([self.prefix_token_id])

    # -- identity ---------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update((self._weights_fingerprint or self._hash_weights()).encode())
            digest.update(self._hash_tokenizer().encode())
            digest.update(f"max_length={self.max_length};dtype={self.model.dtype}".encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def _hash_weights(self) -> str:
        digest = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(self._torch.uint8).numpy())
        return digest.hexdigest()

    def _hash_tokenizer(self) -> str:
        vocabulary = sorted(self.tokenizer.get_vocab().items())
        template = getattr(self.tokenizer, "chat_template", None) or ""
        return hashlib.sha256(repr((vocabulary, template, self.prefix_token_id)).encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        import transformers

        return {
            "adapter": "hf",
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.device),
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "torch": self._torch.__version__,
            "transformers": transformers.__version__,
            "threads": self._torch.get_num_threads(),
            "machine": platform.machine(),
        }

    # -- tokenisation (lm-eval compatible) ---------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        if self._prefix_text and text.startswith(self._prefix_text):
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(text))

    def encode_pair(self, context: str, continuation: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if context == "":
            continuation_ids = list(self.tokenizer.encode(continuation, add_special_tokens=False))
            if continuation_ids and continuation_ids[0] == self.prefix_token_id:
                return tuple(continuation_ids[:1]), tuple(continuation_ids[1:])
            return (self.prefix_token_id,), tuple(continuation_ids)
        spaces = len(context) - len(context.rstrip())
        if spaces:
            continuation = context[-spaces:] + continuation
            context = context[:-spaces]
        whole = self.encode(context + continuation)
        context_ids = self.encode(context)
        return tuple(context_ids), tuple(whole[len(context_ids) :])

    # -- scoring ----------------------------------------------------------------------------------------

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        from harness.adapters.hf_scoring import (
            ContextGroup,
            ScoringWindow,
            score_shared_contexts,
            score_windows,
        )

        encoded = [self.encode_pair(r.context, r.continuation) for r in requests]
        for request, (_, continuation_ids) in zip(requests, encoded, strict=True):
            if not continuation_ids:
                raise HarnessError(f"continuation {request.continuation!r} encodes to no tokens")
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        groups: dict[tuple[int, ...], list[int]] = {}
        too_long: list[int] = []
        for index, (context_ids, continuation_ids) in enumerate(encoded):
            if len(context_ids) + len(continuation_ids) > self.max_length + 1:
                too_long.append(index)
            else:
                groups.setdefault(context_ids, []).append(index)
        # Identical continuations after one context are scored once.
        group_list = []
        for context_ids, indices in groups.items():
            unique = list(dict.fromkeys(encoded[i][1] for i in indices))
            group_list.append((indices, unique, ContextGroup(context_ids, tuple(unique))))
        scores = score_shared_contexts(
            self.model,
            [group for _, _, group in group_list],
            batch_size=self.batch_size,
            device=self.device,
            progress=progress,
        )
        for (indices, unique, _), group_scores in zip(group_list, scores, strict=True):
            by_continuation = dict(zip(unique, group_scores, strict=True))
            for index in indices:
                score = by_continuation[encoded[index][1]]
                results[index] = LoglikelihoodResult(score.logprob, score.is_greedy, len(encoded[index][1]))
        if too_long:
            # Left-truncate as lm-eval does: keep the last max_length + 1 tokens, score the continuation.
            windows = []
            for index in too_long:
                context_ids, continuation_ids = encoded[index]
                sequence = (context_ids + continuation_ids)[-(self.max_length + 1) :]
                windows.append(ScoringWindow(sequence[:-1], continuation_ids))
            window_scores = score_windows(
                self.model, windows, batch_size=self.batch_size, device=self.device, progress=progress
            )
            for index, score in zip(too_long, window_scores, strict=True):
                results[index] = LoglikelihoodResult(score.logprob, score.is_greedy, len(encoded[index][1]))
        return [result for result in results if result is not None]

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]:
        from harness.adapters.hf_scoring import ScoringWindow, score_windows

        windows: list[ScoringWindow] = []
        owners: list[int] = []
        token_counts: list[int] = []
        for index, request in enumerate(requests):
            tokens = self.encode(request.text)
            token_counts.append(len(tokens))
            for context, targets in _rolling_windows(tokens, self.prefix_token_id, self.max_length):
                inputs = context[: len(context) - (len(targets) - 1)] + targets[:-1]
                windows.append(ScoringWindow(inputs, targets))
                owners.append(index)
        scores = score_windows(
            self.model, windows, batch_size=self.batch_size, device=self.device, progress=progress
        )
        totals = [0.0] * len(requests)
        for owner, score in zip(owners, scores, strict=True):
            totals[owner] += score.logprob
        return [
            RollingLoglikelihoodResult(total, count)
            for total, count in zip(totals, token_counts, strict=True)
        ]

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        from harness.adapters.hf_generation import generate_batched

        prompts = [self.render_prompt(request.prompt) for request in requests]
        return generate_batched(self, prompts, [r.settings for r in requests], progress)

    def render_prompt(self, prompt: str | tuple[ChatMessage, ...]) -> str:
        if isinstance(prompt, str):
            return prompt
        if not getattr(self.tokenizer, "chat_template", None):
            raise HarnessError(f"model {self.name} has no chat template, but the task asks for one")
        messages = [{"role": m.role, "content": m.content} for m in prompt]
        rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(rendered)


def _parse_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise HarnessError(f"unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise HarnessError(f"{name} must be a positive whole number, not '{value}'")
    return number


def _batch_size(value: str, device: Any) -> int:
    """`auto`: on CPU, 16 keeps matrix products efficient without padding waste; on GPUs, larger."""
    if value == "auto":
        return 16 if device.type == "cpu" else 64
    return _positive_int("batch size", value)


def _file_fingerprint(folder: Path, gguf_file: str | None) -> str:
    """Hash of the weight and config files' contents: a re-saved identical checkpoint keeps its results."""
    digest = hashlib.sha256()
    names = [gguf_file] if gguf_file else []
    if not gguf_file:
        names = sorted(
            path.name
            for path in folder.iterdir()
            if path.suffix in {".safetensors", ".bin", ".json", ".model", ".txt"} and path.is_file()
        )
    for name in names:
        digest.update(name.encode())
        with open(folder / name, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def load_hf_adapter(target: str, model_args: Mapping[str, str]) -> HFAdapter:
    """Load a local model folder, training checkpoint folder or GGUF file."""
    unknown = set(model_args) - MODEL_ARGS
    if unknown:
        raise HarnessError(
            f"unknown --model-args key '{sorted(unknown)[0]}' (known: {', '.join(sorted(MODEL_ARGS))})"
        )
    path = Path(target).expanduser()
    if not path.exists():
        raise HarnessError(f"model path does not exist: {target}")
    gguf_file: str | None = None
    folder = path
    if path.is_file():
        if path.suffix != ".gguf":
            raise HarnessError(
                f"{target} is a file but not a .gguf model; pass a model folder or a GGUF file"
            )
        gguf_file, folder = path.name, path.parent
    elif not (path / "config.json").exists():
        raise HarnessError(f"{target} is not a transformers model folder (no config.json)")
    # Every argument is checked before the (slow) model load, so a typo fails at once.
    import torch

    dtype = _parse_dtype(model_args.get("dtype", "float32"))
    device_name = model_args.get("device", "cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device_name)
    except RuntimeError:
        raise HarnessError(f"unknown device '{device_name}' (for example cpu, cuda, cuda:1, mps)") from None
    batch_size = _batch_size(model_args.get("batch_size", "auto"), device)
    max_length = _positive_int("max_length", model_args["max_length"]) if "max_length" in model_args else None
    tokenizer_path = model_args.get("tokenizer", str(folder))

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, gguf_file=gguf_file)
        model: Any = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype=dtype)
        model.to(device)
    except (OSError, ValueError, KeyError, RuntimeError, AssertionError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HarnessError(f"cannot load model from {target}: {first_line}") from None
    return HFAdapter(
        model,
        tokenizer,
        name=str(model_args.get("name", target)),
        batch_size=batch_size,
        weights_fingerprint=_file_fingerprint(folder, gguf_file),
        max_length=max_length,
    )
