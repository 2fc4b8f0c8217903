"""Models whose weights are sharded across ranks by FSDP, as a training loop may hand them over.

FSDP2 (`fully_shard`) keeps the model's own classes and gathers each sharded module's weights in that
module's forward hooks, so such a model is evaluated by calling the whole model, the same calls on
every rank: the fast paths that call the decoder and the output head separately (packed rows, shared
prefixes) are switched off for it. FSDP1 (`FullyShardedDataParallel`) wraps the model instead, and a
wrapped model's `generate` runs without the root wrapper's all-gather, so it is recognised in order to
be refused."""

from __future__ import annotations

import functools
import sys
from typing import Any


@functools.cache
def _fsdp2_type() -> type | None:
    # Asked on every scoring batch: a torch without FSDP2 would otherwise retry a failing import each time.
    try:  # public from torch 2.6, earlier under _composable
        from torch.distributed.fsdp import FSDPModule  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        try:
            from torch.distributed._composable.fsdp import FSDPModule  # type: ignore[no-redef,unused-ignore]
        except ImportError:
            return None
    found: type = FSDPModule
    return found


def _modules(model: Any) -> list[Any]:
    # A model that is not a torch module cannot be FSDP-sharded; do not import torch to find out.
    if "torch" not in sys.modules:
        return []
    import torch

    return list(model.modules()) if isinstance(model, torch.nn.Module) else []


def uses_fsdp1(model: Any) -> bool:
    """Whether `model` is, or holds, an FSDP1 wrapper (FullyShardedDataParallel)."""
    # FSDP1 wrappers keep the wrapped module as `_fsdp_wrapped_module`, whatever their class.
    return any("_fsdp_wrapped_module" in module._modules for module in _modules(model))


def is_sharded_model(model: Any) -> bool:
    """Whether `model`, or any module inside it, is sharded by FSDP (FSDP2's `fully_shard` or FSDP1)."""
    modules = _modules(model)
    if not modules:  # not a torch module (or torch never imported): FSDP's types are not even looked up
        return False
    fsdp2 = _fsdp2_type()
    return any(
        (fsdp2 is not None and isinstance(module, fsdp2)) or "_fsdp_wrapped_module" in module._modules
        for module in modules
    )


__all__ = ["is_sharded_model", "uses_fsdp1"]
