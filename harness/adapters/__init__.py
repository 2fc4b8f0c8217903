"""Model adapters. Adding one is one module plus one registration line below (or an entry point in the
`harness.adapters` group from another package)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.adapters.base import ModelAdapter, ProgressCallback
from harness.errors import HarnessError
from harness.registry import Registry

AdapterLoader = Callable[[str, Mapping[str, str]], ModelAdapter]
ADAPTERS: Registry[AdapterLoader] = Registry("model adapter", "harness.adapters")


def _load_hf(target: str, model_args: Mapping[str, str]) -> ModelAdapter:
    from harness.adapters.hf import load_hf_adapter

    return load_hf_adapter(target, model_args)


def _load_mock(target: str, model_args: Mapping[str, str]) -> ModelAdapter:
    from harness.adapters.mock import load_mock_adapter

    return load_mock_adapter(target, model_args)


def _load_openai(target: str, model_args: Mapping[str, str]) -> ModelAdapter:
    from harness.adapters.openai import load_openai_adapter

    return load_openai_adapter(target, model_args)


def _load_lm_eval(target: str, model_args: Mapping[str, str]) -> ModelAdapter:
    from harness.adapters.lm_eval_adapter import load_lm_eval_adapter

    return load_lm_eval_adapter(target, model_args)


def _load_python(target: str, model_args: Mapping[str, str]) -> ModelAdapter:
    from harness.adapters.python_adapter import load_python_adapter

    return load_python_adapter(target, model_args)


def _load_vllm(target: str, model_args: Mapping[str, str]) -> ModelAdapter:
    from harness.adapters.vllm_adapter import load_vllm_adapter

    return load_vllm_adapter(target, model_args)


ADAPTERS.register("hf", _load_hf)
ADAPTERS.register("mock", _load_mock)
ADAPTERS.register("openai", _load_openai)
ADAPTERS.register("lm_eval", _load_lm_eval)
ADAPTERS.register("python", _load_python)
ADAPTERS.register("vllm", _load_vllm)


def load_adapter(spec: str, model_args: Mapping[str, str] | None = None) -> ModelAdapter:
    """`ADAPTER:TARGET` (for example `hf:./checkpoint-1000` or `mock:7`); a bare path means `hf`."""
    adapter_name, separator, target = spec.partition(":")
    if not separator or adapter_name not in ADAPTERS:
        if separator and len(adapter_name) > 1 and "/" not in adapter_name and "." not in adapter_name:
            ADAPTERS.get(adapter_name)  # raises with the closest known name
        adapter_name, target = "hf", spec
    return ADAPTERS.get(adapter_name)(target, dict(model_args or {}))


def wrap_model(model: Any, tokenizer: Any, *, name: str = "in-memory", batch_size: int = 8) -> ModelAdapter:
    """An already-loaded transformers model and tokenizer (a training loop's), without saving it."""
    from harness.adapters.hf import HFAdapter

    if model is None or tokenizer is None:
        raise HarnessError("wrap_model needs both a model and a tokenizer")
    return HFAdapter(model, tokenizer, name=name, batch_size=batch_size)


__all__ = ["ADAPTERS", "ModelAdapter", "ProgressCallback", "load_adapter", "wrap_model"]
