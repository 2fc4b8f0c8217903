"""`vllm` adapter: a model run in-process by vLLM (`pip install 'harness-lm[vllm]'`, a CUDA GPU).

`--model vllm:MODEL --model-args tensor_parallel_size=2 gpu_memory_utilization=0.9 max_model_len=4096
dtype=bfloat16`. Prefix caching is on, so few-shot prefixes shared by many prompts are computed once.
Tokenisation is the `hf` adapter's (lm-eval's): contexts and continuations are encoded here and sent as
token ids, and loglikelihoods come from vLLM's prompt logprobs (`SamplingParams(prompt_logprobs=1)`): the
logprob of each continuation token given everything before it, greedy when it is the top-ranked token.
Rolling loglikelihoods use the `hf` adapter's disjoint windows, each one prompt. Generation sends the
prompt's token ids (cut from the left to leave room for `max_tokens`, as the `hf` adapter does) with
vLLM's stop sequences. vLLM is imported, and the model loaded, only when a request needs the model: a
re-run answered from the request cache never starts the engine. Data parallelism comes from running one
process per GPU group with the runner's shards.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.adapters.base import ProgressCallback, refuse_unknown_model_args
from harness.adapters.file_fingerprint import file_fingerprint
from harness.adapters.hf import _rolling_windows
from harness.errors import HarnessError
from harness.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

DTYPES = ("auto", "float32", "float16", "bfloat16")
MODEL_ARGS = frozenset(
    {"tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype", "revision", "name"}
    | {"seed", "trust_remote_code", "enable_prefix_caching"}
)
INSTALL_HINT = "install it with pip install 'harness-lm[vllm]' (it needs a CUDA GPU)"


@dataclass(frozen=True)
class VLLMSettings:
    model: str
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    dtype: str = "auto"
    revision: str | None = None
    name: str | None = None
    seed: int = 1234
    trust_remote_code: bool = False
    enable_prefix_caching: bool = True


def _number(args: Mapping[str, str], key: str, kind: type, low: float, high: float | None = None) -> Any:
    try:
        value = kind(args[key])
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"≥ {low:g}"
        raise HarnessError(f"vllm adapter: {key} must be a number {bounds}, not '{args[key]}'")
    return value


def _flag(args: Mapping[str, str], key: str, default: bool) -> bool:
    value = args.get(key, str(default)).lower()
    if value not in ("true", "false", "1", "0"):
        raise HarnessError(f"vllm adapter: {key} must be true or false, not '{args[key]}'")
    return value in ("true", "1")


def parse_settings(target: str, model_args: Mapping[str, str]) -> VLLMSettings:
    refuse_unknown_model_args("vllm", model_args, MODEL_ARGS)
    if not target:
        raise HarnessError("vllm adapter needs a model: --model vllm:MODEL_DIR_OR_NAME")
    dtype = model_args.get("dtype", "auto")
    if dtype not in DTYPES:
        raise HarnessError(f"vllm adapter: unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
    args = dict(model_args)
    return VLLMSettings(
        model=target,
        tensor_parallel_size=_number(args, "tensor_parallel_size", int, 1)
        if "tensor_parallel_size" in args
        else 1,
        gpu_memory_utilization=(
            _number(args, "gpu_memory_utilization", float, 0.01, 1.0)
            if "gpu_memory_utilization" in args
            else 0.9
        ),
        max_model_len=_number(args, "max_model_len", int, 2) if "max_model_len" in args else None,
        dtype=dtype,
        revision=args.get("revision"),
        name=args.get("name"),
        seed=_number(args, "seed", int, 0) if "seed" in args else 1234,
        trust_remote_code=_flag(args, "trust_remote_code", False),
        enable_prefix_caching=_flag(args, "enable_prefix_caching", True),
    )


class VLLMAdapter:
    """A model in a vLLM engine in this process; the engine starts with the first request."""

    def __init__(self, settings: VLLMSettings) -> None:
        self.settings = settings
        self._engine: Any = None
        self._tokenizer: Any = None
        self.max_length = 0
        self.prefix_token_id = 0

    # -- identity ---------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.settings.name or self.settings.model

    @property
    def fingerprint(self) -> str:
        s = self.settings
        folder = Path(s.model).expanduser()
        weights = file_fingerprint(folder, None) if (folder / "config.json").exists() else s.model
        # Different kernels and dtypes give (slightly) different numbers: they are part of the identity.
        identity = "\n".join(("vllm", weights, s.revision or "", s.dtype, str(s.max_model_len or "")))
        return hashlib.sha256(identity.encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        record: dict[str, Any] = {"adapter": "vllm", **asdict(self.settings), "device": "cuda"}
        spec = importlib.util.find_spec("vllm")
        if spec is not None:
            record["vllm_version"] = str(getattr(importlib.import_module("vllm"), "__version__", "unknown"))
        return record

    # -- the engine -------------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._engine is not None:
            return
        try:
            vllm = importlib.import_module("vllm")
        except ImportError as error:
            raise HarnessError(f"the vllm adapter needs vLLM ({error}); {INSTALL_HINT}") from None
        s = self.settings
        try:
            self._engine = vllm.LLM(
                model=s.model,
                revision=s.revision,
                tensor_parallel_size=s.tensor_parallel_size,
                gpu_memory_utilization=s.gpu_memory_utilization,
                max_model_len=s.max_model_len,
                dtype=s.dtype,
                seed=s.seed,
                trust_remote_code=s.trust_remote_code,
                enable_prefix_caching=s.enable_prefix_caching,
            )
        except (OSError, ValueError, RuntimeError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise HarnessError(f"vllm adapter: cannot start the engine for {s.model}: {first_line}") from None
        self._tokenizer = self._engine.get_tokenizer()
        config = getattr(getattr(self._engine, "llm_engine", None), "model_config", None)
        self.max_length = int(s.max_model_len or getattr(config, "max_model_len", 0) or 2048)
        bos = self._tokenizer.bos_token_id
        self.prefix_token_id = bos if bos is not None else self._tokenizer.eos_token_id

    def _sampling(self, **kwargs: Any) -> Any:
        return importlib.import_module("vllm").SamplingParams(**kwargs)

    def _run(self, prompts: list[list[int]], params: Any) -> list[Any]:
        token_prompts = [{"prompt_token_ids": ids} for ids in prompts]
        return list(self._engine.generate(token_prompts, params, use_tqdm=False))

    # -- tokenisation, as the hf adapter (and lm-eval) tokenise -------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text))

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if context == "":
            return [self.prefix_token_id], list(
                self._tokenizer.encode(continuation, add_special_tokens=False)
            )
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self._encode(context + continuation)
        context_ids = self._encode(context)
        return context_ids, whole[len(context_ids) :]

    # -- the three request kinds ------------------------------------------------------------------------

    def _score(self, sequences: list[tuple[list[int], int]]) -> list[tuple[float, bool]]:
        """(sum of the last `count` tokens' logprobs, all greedy) for each (token ids, count)."""
        params = self._sampling(temperature=0.0, max_tokens=1, prompt_logprobs=1, detokenize=False)
        outputs = self._run([ids for ids, _ in sequences], params)
        scores = []
        for (ids, count), output in zip(sequences, outputs, strict=True):
            total, greedy = 0.0, True
            for position in range(len(ids) - count, len(ids)):
                candidates = output.prompt_logprobs[position]
                chosen = candidates[ids[position]]
                total += float(chosen.logprob)
                rank = getattr(chosen, "rank", None)
                best = max(float(c.logprob) for c in candidates.values())
                greedy = greedy and (rank == 1 if rank is not None else chosen.logprob >= best)
            scores.append((total, greedy))
        return scores

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        self._start()
        sequences = []
        for request in requests:
            context, continuation = self._encode_pair(request.context, request.continuation)
            # As lm-eval: the sequence is cut from the left to the model's length; one token is the minimum
            # context, so at most max_length - 1 continuation tokens are scored.
            whole = (context + continuation)[-self.max_length :]
            sequences.append((whole, min(len(continuation), len(whole) - 1)))
        scores = self._score(sequences)
        if progress is not None:
            progress(len(requests), sum(len(ids) for ids, _ in sequences))
        return [
            LoglikelihoodResult(total, greedy, count)
            for (total, greedy), (_, count) in zip(scores, sequences, strict=True)
        ]

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]:
        self._start()
        sequences, owners, counts = [], [], []
        for index, request in enumerate(requests):
            tokens = self._encode(request.text)
            counts.append(len(tokens))
            # Prompt logprobs need the last target inside the prompt: a window is one token shorter.
            for context, targets in _rolling_windows(tokens, self.prefix_token_id, self.max_length - 1):
                kept = list(context[: len(context) - (len(targets) - 1)])
                sequences.append((kept + list(targets), len(targets)))
                owners.append(index)
        totals = [0.0] * len(requests)
        for owner, (total, _) in zip(owners, self._score(sequences), strict=True):
            totals[owner] += total
        if progress is not None:
            progress(len(requests), sum(counts))
        return [RollingLoglikelihoodResult(total, count) for total, count in zip(totals, counts, strict=True)]

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        self._start()
        eos = self._tokenizer.eos_token
        results: list[GenerationResult | None] = [None] * len(requests)
        # One engine call per distinct settings: vLLM schedules all of their prompts at once.
        by_settings: dict[GenerationSettings, list[int]] = {}
        for index, request in enumerate(requests):
            by_settings.setdefault(request.settings, []).append(index)
        for settings, indices in by_settings.items():
            stops = [stop for stop in settings.stop if stop]
            sampling: dict[str, Any] = {
                "max_tokens": settings.max_tokens,
                "stop": stops,
                "seed": settings.seed,
            }
            if settings.do_sample:
                sampling.update(temperature=settings.temperature, top_p=settings.top_p)
            else:
                sampling["temperature"] = 0.0
            room = max(1, self.max_length - settings.max_tokens)
            prompts = [self._encode(self.render_prompt(requests[i].prompt))[-room:] for i in indices]
            for index, output in zip(indices, self._run(prompts, self._sampling(**sampling)), strict=True):
                completion = output.outputs[0]
                text = completion.text
                for stop in [*stops, eos] if eos else stops:
                    text = text.split(stop)[0]
                results[index] = GenerationResult(text, len(completion.token_ids))
            if progress is not None:
                progress(len(indices), sum(len(ids) for ids in prompts))
        return [result for result in results if result is not None]

    def render_prompt(self, prompt: str | tuple[ChatMessage, ...]) -> str:
        if isinstance(prompt, str):
            return prompt
        if not getattr(self._tokenizer, "chat_template", None):
            raise HarnessError(f"model {self.name} has no chat template, but the task asks for one")
        messages = [{"role": m.role, "content": m.content} for m in prompt]
        return str(self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def load_vllm_adapter(target: str, model_args: Mapping[str, str]) -> VLLMAdapter:
    settings = parse_settings(target, model_args)
    if importlib.util.find_spec("vllm") is None:
        raise HarnessError(f"the vllm adapter needs vLLM, which is not installed; {INSTALL_HINT}")
    return VLLMAdapter(settings)
