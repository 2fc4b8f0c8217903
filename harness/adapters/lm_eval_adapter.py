"""`lm_eval` adapter: any lm-evaluation-harness model backend as a harness model.

`--model lm_eval:hf --model-args pretrained=DIR batch_size=8` builds lm-eval's `hf` backend with those
arguments (typed the way lm-eval's own `--model_args` types them); `vllm`, `local-completions` and the rest
work the same way. The other direction, any harness adapter as an lm-eval `LM`, is `harness.lm_eval_model`:
it runs requests through harness's runner and cache, a layer above the adapters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.adapters.base import ProgressCallback
from harness.adapters.file_fingerprint import file_fingerprint
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

try:
    # lm-eval fills its model registry with lazy entries only while that registry is empty, so its backends
    # are imported before anything (harness.lm_eval_model) registers a model of its own.
    import lm_eval.models  # noqa: F401
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model
    from lm_eval.utils import handle_arg_string
except ImportError as import_error:
    raise HarnessError(
        f"the lm_eval adapter needs lm-evaluation-harness ({import_error}); "
        "install it with: pip install 'harness[lm-eval]'"
    ) from import_error

# Our own model args; everything else goes to the lm-eval backend's constructor.
HARNESS_ARGS = frozenset({"name"})
# Argument names whose values stay out of provenance (they may hold credentials).
_SECRET_MARKERS = ("key", "token", "secret", "password")
# Where lm-eval backends take the model from: a local one is fingerprinted by its files' contents.
_MODEL_LOCATION_ARGS = ("pretrained", "model", "path")


def _lm_eval_version() -> str:
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return "unknown"


def _local_weights_fingerprint(model_args: Mapping[str, str]) -> str | None:
    for key in _MODEL_LOCATION_ARGS:
        path = Path(model_args.get(key, "")).expanduser()
        if model_args.get(key) and path.is_dir():
            return file_fingerprint(path, None)
        if model_args.get(key) and path.is_file():
            return file_fingerprint(path.parent, path.name)
    return None


def _instance(kind: str, arguments: tuple[Any, ...], index: int) -> Any:
    return Instance(request_type=kind, doc={}, arguments=arguments, idx=0, metadata=("harness", index, 1))


def _gen_kwargs(settings: GenerationSettings) -> dict[str, Any]:
    """lm-eval's generation kwargs for our settings; not sampling means greedy, whatever the temperature."""
    kwargs: dict[str, Any] = {
        "until": list(settings.stop),
        "max_gen_toks": settings.max_tokens,
        "do_sample": settings.do_sample,
        "temperature": settings.temperature if settings.do_sample else 0.0,
    }
    if settings.do_sample and settings.top_p != 1.0:
        kwargs["top_p"] = settings.top_p
    return kwargs


class LMEvalAdapter:
    """An lm-eval `LM` (built from a registered backend name, or passed in) as a harness model adapter.

    lm-eval returns no token counts, so they come from the backend's tokenizer where it has one;
    perplexity needs it, and the other request kinds report 0 tokens without one.
    """

    def __init__(
        self, lm: Any, *, backend: str, model_args: Mapping[str, str], name: str | None = None
    ) -> None:
        self.lm = lm
        self.backend = backend
        self.model_args = dict(model_args)
        location = next((model_args[k] for k in _MODEL_LOCATION_ARGS if model_args.get(k)), None)
        self._name = name or (f"{backend}:{location}" if location else backend)
        self._fingerprint: str | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            # Backend arguments (dtype, max_length, ...) change scores, so all of them count, as do the
            # lm-eval version and, for a local model, the contents of its files rather than its path.
            identity = {
                "backend": self.backend,
                "args": sorted(self.model_args.items()),
                "lm_eval": _lm_eval_version(),
                "weights": _local_weights_fingerprint(self.model_args),
            }
            self._fingerprint = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        return self._fingerprint

    def provenance(self) -> dict[str, Any]:
        args = {
            key: "<hidden>" if any(marker in key.lower() for marker in _SECRET_MARKERS) else value
            for key, value in self.model_args.items()
        }
        return {
            "adapter": "lm_eval",
            "backend": self.backend,
            "backend_args": args,
            "lm_eval": _lm_eval_version(),
            "dtype": args.get("dtype", "backend default"),
            "device": str(getattr(self.lm, "device", None) or args.get("device", "backend default")),
            "batch_size": args.get("batch_size", "backend default"),
        }

    def _call(self, method: str, instances: list[Any]) -> list[Any]:
        try:
            outputs = list(getattr(self.lm, method)(instances))
        except NotImplementedError:
            raise HarnessError(
                f"lm_eval adapter ({self.backend}): the backend cannot serve {method} requests"
            ) from None
        if len(outputs) != len(instances):
            raise HarnessError(
                f"lm_eval adapter ({self.backend}): {method} returned {len(outputs)} results "
                f"for {len(instances)} requests"
            )
        return outputs

    def _tokens(self, text: str) -> int | None:
        encode: Callable[[str], list[int]] | None = getattr(self.lm, "tok_encode", None)
        return len(encode(text)) if encode is not None else None

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        instances = [
            _instance("loglikelihood", (r.context, r.continuation), i) for i, r in enumerate(requests)
        ]
        outputs = self._call("loglikelihood", instances)
        encode_pair = getattr(self.lm, "_encode_pair", None)
        results = []
        for request, (logprob, is_greedy) in zip(requests, outputs, strict=True):
            if not request.context or encode_pair is None:  # lm-eval encodes an empty context on its own
                count = self._tokens(request.continuation) or 0
            else:
                count = len(encode_pair(request.context, request.continuation)[1])
            results.append(LoglikelihoodResult(float(logprob), bool(is_greedy), count))
        if progress is not None:
            progress(len(requests), sum(result.num_tokens for result in results))
        return results

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]:
        counts = [self._tokens(request.text) for request in requests]
        if any(count is None for count in counts):
            raise HarnessError(
                f"lm_eval adapter ({self.backend}): the backend has no tokenizer (tok_encode), so "
                "perplexity cannot be normalised per token"
            )
        outputs = self._call(
            "loglikelihood_rolling",
            [_instance("loglikelihood_rolling", (r.text,), i) for i, r in enumerate(requests)],
        )
        results = [
            RollingLoglikelihoodResult(float(output[0] if isinstance(output, tuple) else output), count or 0)
            for output, count in zip(outputs, counts, strict=True)
        ]
        if progress is not None:
            progress(len(requests), sum(result.num_tokens for result in results))
        return results

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        instances = [
            _instance("generate_until", (self._render(r), _gen_kwargs(r.settings)), i)
            for i, r in enumerate(requests)
        ]
        texts = self._call("generate_until", instances)
        results = [GenerationResult(str(text), self._tokens(str(text)) or 0) for text in texts]
        if progress is not None:
            progress(len(requests), sum(result.num_tokens for result in results))
        return results

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        try:
            return str(self.lm.apply_chat_template(messages, add_generation_prompt=add_generation_prompt))
        except NotImplementedError:
            raise HarnessError(
                f"lm_eval adapter ({self.backend}): the task asks for a chat template, but the backend "
                "has none"
            ) from None

    def _render(self, request: GenerationRequest) -> str:
        if isinstance(request.prompt, str):
            return request.prompt
        messages = [{"role": m.role, "content": m.content} for m in request.prompt]
        try:
            return str(self.lm.apply_chat_template(messages, add_generation_prompt=True))
        except NotImplementedError:
            raise HarnessError(
                f"lm_eval adapter ({self.backend}): the task sends chat messages, but the backend has "
                "no chat template"
            ) from None


def load_lm_eval_adapter(target: str, model_args: Mapping[str, str]) -> LMEvalAdapter:
    """`lm_eval:BACKEND` with the backend's own constructor arguments as model args."""
    if not target:
        raise HarnessError("lm_eval adapter needs a backend name: --model lm_eval:hf (or vllm, ...)")
    try:
        backend_class = get_model(target)
    except ValueError:
        from lm_eval.api.registry import model_registry

        known = ", ".join(sorted(model_registry.keys()))
        raise HarnessError(f"lm_eval adapter: unknown lm-eval backend '{target}' (known: {known})") from None
    backend_args = {
        key: handle_arg_string(value) for key, value in model_args.items() if key not in HARNESS_ARGS
    }
    try:
        lm = backend_class.create_from_arg_obj(backend_args)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, AssertionError) as error:
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else type(error).__name__
        raise HarnessError(f"lm_eval adapter: cannot create the '{target}' backend: {first_line}") from None
    backend_model_args = {key: value for key, value in model_args.items() if key not in HARNESS_ARGS}
    return LMEvalAdapter(lm, backend=target, model_args=backend_model_args, name=model_args.get("name"))
