"""lm-evaluation-harness interoperability, both ways.

- `lm_eval` adapter: any lm-eval model backend as a harness model. `--model lm_eval:hf --model-args
  pretrained=DIR batch_size=8` builds lm-eval's `hf` backend with those arguments (typed the way lm-eval's
  own `--model_args` types them); `vllm`, `local-completions` and the rest work the same way.
- `HarnessLM`: any harness adapter as an lm-eval `LM`, so lm-eval's task registry and evaluator can run
  it: `lm_eval.simple_evaluate(model=HarnessLM("hf:DIR"), tasks=[...], task_manager=...)`. Importing this
  module also registers it with lm-eval as `harness` (`simple_evaluate(model="harness",
  model_args="model=hf:DIR")`). Requests go through harness's runner, so they are deduplicated and, with
  `cache=PATH`, answered from and saved to harness's request cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.adapters.base import ModelAdapter, ProgressCallback
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
    Result,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

try:
    # lm-eval fills its model registry with lazy entries only while that registry is empty; ours must not
    # be the first entry, or names such as `hf` would vanish for everyone in this process.
    import lm_eval.models  # noqa: F401
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import LM
    from lm_eval.api.registry import get_model, register_model
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
# lm-eval generation settings that harness's GenerationSettings can express.
_GENERATION_KEYS = frozenset({"until", "max_gen_toks", "max_new_tokens", "do_sample", "temperature"})
_GENERATION_KEYS |= {"top_p", "seed"}


def _lm_eval_version() -> str:
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return "unknown"


def _local_weights_fingerprint(model_args: Mapping[str, str]) -> str | None:
    from harness.adapters.hf import _file_fingerprint

    for key in _MODEL_LOCATION_ARGS:
        path = Path(model_args.get(key, "")).expanduser()
        if model_args.get(key) and path.is_dir():
            return _file_fingerprint(path, None)
        if model_args.get(key) and path.is_file():
            return _file_fingerprint(path.parent, path.name)
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


def _settings_from_gen_kwargs(gen_kwargs: Mapping[str, Any]) -> GenerationSettings:
    """The same reading of lm-eval generation kwargs as harness's task loader applies to task YAML."""
    unsupported = sorted(set(gen_kwargs) - _GENERATION_KEYS)
    if unsupported:
        raise HarnessError(f"harness LM: generation setting '{unsupported[0]}' is not supported")
    until = gen_kwargs.get("until") or []
    temperature = float(gen_kwargs.get("temperature", 0.0))
    return GenerationSettings(
        max_tokens=int(gen_kwargs.get("max_gen_toks", gen_kwargs.get("max_new_tokens", 256))),
        stop=tuple(str(stop) for stop in ([until] if isinstance(until, str) else until)),
        do_sample=bool(gen_kwargs.get("do_sample", False)) and temperature > 0,
        temperature=temperature,
        top_p=float(gen_kwargs.get("top_p", 1.0)),
        seed=gen_kwargs.get("seed"),
    )


@register_model("harness")
class HarnessLM(LM):
    """A harness model adapter (or an `ADAPTER:TARGET` spec) as an lm-eval language model."""

    def __init__(
        self,
        model: str | ModelAdapter,
        cache: str | None = None,
        batch_size: int | str | None = None,
        device: str | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__()
        from harness.adapters import load_adapter
        from harness.cache import RequestCache

        if isinstance(model, str):
            args = {key: str(value) for key, value in model_args.items()}
            # lm-eval's evaluator passes its own --batch_size and --device; the adapter takes them as args.
            args.update(
                {k: str(v) for k, v in (("batch_size", batch_size), ("device", device)) if v is not None}
            )
            self.adapter: ModelAdapter = load_adapter(model, args)
        elif model_args:
            raise HarnessError(
                f"harness LM: model arguments {sorted(model_args)} need a model spec, not an adapter"
            )
        else:
            self.adapter = model
        self.cache = RequestCache(cache) if cache else None

    def _serve(self, kind: str, instances: list[Any], requests: list[Request]) -> list[Result]:
        from harness.runner import serve_requests

        served = serve_requests(self.adapter, requests, self.cache, show_progress=False)
        results = [served[request] for request in requests]
        for instance, result in zip(instances, results, strict=True):
            # lm-eval's CachingLM (--use_cache) listens on this hook.
            self.cache_hook.add_partial(kind, instance.args, _lm_eval_value(result))
        return results

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        ours: list[Request] = [LoglikelihoodRequest(*instance.args) for instance in requests]
        return [_lm_eval_value(result) for result in self._serve("loglikelihood", requests, ours)]

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        ours: list[Request] = [RollingLoglikelihoodRequest(instance.args[0]) for instance in requests]
        return [_lm_eval_value(result) for result in self._serve("loglikelihood_rolling", requests, ours)]

    def generate_until(self, requests: list[Any]) -> list[str]:
        ours: list[Request] = [
            GenerationRequest(instance.args[0], _settings_from_gen_kwargs(instance.args[1]))
            for instance in requests
        ]
        return [_lm_eval_value(result) for result in self._serve("generate_until", requests, ours)]


def _lm_eval_value(result: Result) -> Any:
    """A result in the shape lm-eval's evaluator expects for its request kind."""
    if isinstance(result, LoglikelihoodResult):
        return (result.logprob, result.is_greedy)
    if isinstance(result, RollingLoglikelihoodResult):
        return result.logprob
    return result.text
