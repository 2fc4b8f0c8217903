"""`hf` adapter: transformers causal LMs from a local folder, a training checkpoint, a GGUF file, or memory.

Tokenisation follows lm-evaluation-harness's HF backend (0.4.13) exactly, so numbers match it: the
tokenizer's default special tokens, trailing context whitespace moved into the continuation,
continuation tokens cut from the encoding of context + continuation, the BOS (else EOS) token as the
prefix of an empty context and of the first perplexity window, and the same rolling windows.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.adapters.base import ProgressCallback
from harness.adapters.file_fingerprint import file_fingerprint
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
# Part of every fingerprint: bump it when tokenisation, windows or scoring change, so cached answers
# computed the old way are not reused.
SCORING_VERSION = 1
DTYPES = ("float32", "bfloat16", "float16", "auto")
_DEVICE_PATTERN = re.compile(r"(cpu|cuda|mps|xpu|hpu|npu|meta)(:\d+)?")
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


ModelLoader = Callable[[], tuple[Any, Any]]


class HFAdapter:
    """A transformers causal LM: given in memory, or loaded from disk on first use.

    A model from disk is identified by a hash of its files, so a re-run whose answers are all in the
    request cache never imports torch or loads the weights.
    """

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        *,
        name: str,
        batch_size: int = 8,
        loader: ModelLoader | None = None,
        files_fingerprint: str | None = None,
        max_length: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        if (model is None or tokenizer is None) and loader is None:
            raise HarnessError("the hf adapter needs a model and a tokenizer, or a way to load them")
        self._model = model
        self._tokenizer = tokenizer
        self._loader = loader
        self._name = name
        self.batch_size = int(batch_size)
        self._max_length_override = max_length
        self._files_fingerprint = files_fingerprint
        self._settings = dict(settings or {})
        self._fingerprint: str | None = None
        # Keys/values of shared few-shot prefixes, kept between calls (harness.adapters.hf_packed.PrefixMemo).
        self._prefix_memo: Any = None
        if model is not None:
            self._prepare()

    def _prepare(self) -> None:
        tokenizer = self._tokenizer
        self.device = next(self._model.parameters()).device
        if self.batch_size <= 0:
            # `auto`: on CPU, 8-16 rows keep matrix products efficient; accelerators want more.
            self.batch_size = 16 if self.device.type == "cpu" else 64
        self.max_length = int(self._max_length_override or _resolve_max_length(self._model, tokenizer))
        bos = tokenizer.bos_token_id
        self.prefix_token_id: int = bos if bos is not None else tokenizer.eos_token_id
        self._prefix_text = tokenizer.decode([self.prefix_token_id])

    def _ensure_loaded(self) -> None:
        if self._model is None:
            assert self._loader is not None
            self._model, self._tokenizer = self._loader()
            self._prepare()

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode (no dropout) while scoring; a training loop's model goes back to training after."""
        model = self.model
        was_training = bool(getattr(model, "training", False))
        model.eval()
        try:
            yield
        finally:
            if was_training:
                model.train()

    @property
    def model(self) -> Any:
        self._ensure_loaded()
        return self._model

    @property
    def loaded_model(self) -> Any:
        """The model if it is in memory already, else None (asking does not load it)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        self._ensure_loaded()
        return self._tokenizer

    # -- identity ---------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.sha256(f"hf-scoring-{SCORING_VERSION}".encode())
            if self._files_fingerprint is not None:
                digest.update(self._files_fingerprint.encode())
                digest.update(repr(sorted(self._settings.items())).encode())
            else:
                digest.update(self._hash_weights().encode())
                digest.update(self._hash_tokenizer().encode())
                digest.update(f"max_length={self.max_length};dtype={self.model.dtype}".encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def _hash_weights(self) -> str:
        import torch

        digest = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            # An FSDP-sharded weight (a DTensor) is hashed as this rank's shard: every rank takes part
            # in a distributed evaluation, which combines the ranks' fingerprints.
            tensor = tensor.to_local() if hasattr(tensor, "to_local") else tensor
            digest.update(key.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy())
        return digest.hexdigest()

    def _hash_tokenizer(self) -> str:
        vocabulary = sorted(self.tokenizer.get_vocab().items())
        template = getattr(self.tokenizer, "chat_template", None) or ""
        return hashlib.sha256(repr((vocabulary, template, self.prefix_token_id)).encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        record: dict[str, Any] = {"adapter": "hf", "batch_size": self.batch_size, **self._settings}
        if self._model is None:
            # Every answer came from the cache: the weights were never loaded.
            record["model_loaded"] = False
            return record
        import torch
        import transformers

        record.update(
            dtype=str(self._model.dtype).removeprefix("torch."),
            device=str(self.device),
            max_length=self.max_length,
            torch=torch.__version__,
            transformers=transformers.__version__,
            threads=torch.get_num_threads(),
            machine=platform.machine(),
        )
        return record

    # -- tokenisation (lm-eval compatible) ---------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        self._ensure_loaded()
        if self._prefix_text and text.startswith(self._prefix_text):
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(text))

    def encode_pair(self, context: str, continuation: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        self._ensure_loaded()
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
        with self._evaluating():
            return self._loglikelihood(requests, progress)

    def _loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None
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
        from harness.adapters.hf_packed import PrefixMemo, packing_supported, score_packed

        context_groups = [group for _, _, group in group_list]
        if packing_supported(self.model, self.device):
            if self._prefix_memo is None:
                self._prefix_memo = PrefixMemo()
            scores = score_packed(
                self.model,
                context_groups,
                batch_size=self.batch_size,
                device=self.device,
                memo=self._prefix_memo,
                progress=progress,
            )
        else:
            scores = score_shared_contexts(
                self.model, context_groups, batch_size=self.batch_size, device=self.device, progress=progress
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
        with self._evaluating():
            return self._loglikelihood_rolling(requests, progress)

    def _loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None
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
        # Perplexity never asks whether a token was the argmax, so that pass over the vocabulary is skipped.
        scores = score_windows(
            self.model,
            windows,
            batch_size=self.batch_size,
            device=self.device,
            progress=progress,
            need_greedy=False,
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
        with self._evaluating():
            return self._generate(requests, progress)

    def _generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None
    ) -> list[GenerationResult]:
        from harness.adapters.hf_generation import generate_batched
        from harness.adapters.hf_packed import PrefixMemo

        if self._prefix_memo is None:
            self._prefix_memo = PrefixMemo()
        prompts = [self.render_prompt(request.prompt) for request in requests]
        return generate_batched(self, prompts, [r.settings for r in requests], progress, self._prefix_memo)

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        """The tokenizer's chat template, called as lm-eval's HFLM calls it (also its retry without a
        system turn for templates that refuse one)."""
        import jinja2

        if not getattr(self.tokenizer, "chat_template", None):
            raise HarnessError(f"model {self.name} has no chat template, but the task asks for one")
        options = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
        try:
            rendered = self.tokenizer.apply_chat_template(
                messages, continue_final_message=not add_generation_prompt, **options
            )
        except jinja2.TemplateError:
            without_system = [message for message in messages if message["role"] != "system"]
            rendered = self.tokenizer.apply_chat_template(
                without_system, continue_final_message=not add_generation_prompt, **options
            )
        return str(rendered)

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


def parse_batch_size(value: str) -> int:
    """0 stands for `auto`, settled once the model's device is known."""
    return 0 if value == "auto" else _positive_int("batch size", value)


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
    # Every argument is checked before the (slow) model load, so a typo fails at once; torch itself is
    # imported only when the model is needed.
    dtype_name = model_args.get("dtype", "float32")
    if dtype_name not in DTYPES:
        raise HarnessError(f"unknown dtype '{dtype_name}' (choose from {', '.join(DTYPES)})")
    device_name = model_args.get("device")
    if device_name is not None and not _DEVICE_PATTERN.fullmatch(device_name):
        raise HarnessError(f"unknown device '{device_name}' (for example cpu, cuda, cuda:1, mps)")
    batch_size = parse_batch_size(model_args.get("batch_size", "auto"))
    max_length = _positive_int("max_length", model_args["max_length"]) if "max_length" in model_args else None
    tokenizer_path = model_args.get("tokenizer", str(folder))
    if not Path(tokenizer_path).is_dir():
        raise HarnessError(
            f"tokenizer folder does not exist: {tokenizer_path} (models load from local files only)"
        )

    def load() -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, gguf_file=gguf_file)
            dtype = _parse_dtype(dtype_name)
            model: Any = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype=dtype)
            model.to(torch.device(device_name or ("cuda" if torch.cuda.is_available() else "cpu")))
        except (OSError, ValueError, KeyError, RuntimeError, AssertionError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise HarnessError(f"cannot load model from {target}: {first_line}") from None
        return model, tokenizer

    files_fingerprint = file_fingerprint(folder, gguf_file)
    if tokenizer_path != str(folder):
        files_fingerprint += file_fingerprint(Path(tokenizer_path), None)
    return HFAdapter(
        name=str(model_args.get("name", target)),
        batch_size=batch_size,
        loader=load,
        files_fingerprint=files_fingerprint,
        max_length=max_length,
        settings={"dtype": dtype_name, "max_length": str(max_length or "")},
    )
