"""Harness models for lm-evaluation-harness: any harness adapter as an lm-eval `LM`.

lm-eval's task registry and evaluator can then run it: `lm_eval.simple_evaluate(model=HarnessLM("hf:DIR"),
tasks=[...], task_manager=...)`. Importing this module also registers it with lm-eval as `harness`
(`simple_evaluate(model="harness", model_args="model=hf:DIR")`). Requests go through harness's runner, so
they are deduplicated and, with `cache=PATH`, answered from and saved to harness's request cache.

The other direction, an lm-eval backend as a harness model, is the `lm_eval` adapter
(`harness.adapters.lm_eval_adapter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.adapters import load_adapter
from harness.adapters.base import ModelAdapter
from harness.cache import RequestCache
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    GenerationSettings,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
    Result,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)
from harness.runner import serve_requests

try:
    # lm-eval fills its model registry with lazy entries only while that registry is empty; ours must not
    # be the first entry, or names such as `hf` would vanish for everyone in this process.
    import lm_eval.models  # noqa: F401
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as import_error:
    raise HarnessError(
        f"HarnessLM needs lm-evaluation-harness ({import_error}); "
        "install it with: pip install 'harness[lm-eval]'"
    ) from import_error

# lm-eval generation settings that harness's GenerationSettings can express.
_GENERATION_KEYS = frozenset({"until", "max_gen_toks", "max_new_tokens", "do_sample", "temperature"})
_GENERATION_KEYS |= {"top_p", "seed"}


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


__all__ = ["HarnessLM"]
