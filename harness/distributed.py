"""One evaluation over every rank of torch.distributed (torchrun, accelerate launch, a DDP/FSDP trainer).

Every rank runs the same evaluation code. Two wrappers keep them in step: `RankZeroCache` lets rank 0
look requests up in its cache and hands every rank the same answers, so all ranks agree on what is
missing; `DistributedAdapter` splits each batch of missing requests between the ranks (the split of
harness.shards, so a multiple-choice context's options stay on one rank), serves its own share on the
local device, and gathers every rank's answers to all ranks. Rank 0 alone writes the cache and the run,
and only rank 0 shows a progress bar. Every rank ends with the same results and the same scores.

A model whose weights are sharded across the ranks (FSDP2's `fully_shard`) gathers them in every
forward, a collective all ranks must join, so ranks serving shares of different sizes would deadlock.
Such a model is evaluated `replicated`: every rank serves every request, the same forward calls in the
same order, and rank 0's answers are everyone's; its memory stays sharded, its time is that of one
rank. FSDP1 wrappers are refused (`refuse_fsdp1`): their `generate` bypasses the root's all-gather.

Whatever rank 0 does alone (reading or writing the cache, checking files) ends in a collective that tells
every rank whether it worked, so an error on rank 0 stops every rank with the same message instead of
leaving the others waiting for a collective that never comes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.adapters.base import ChatTemplateAdapter, ModelAdapter, ProgressCallback
from harness.adapters.sharded import uses_fsdp1
from harness.cache import RequestCache
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
    Result,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)
from harness.shards import split_requests

__all__ = [
    "DistributedAdapter",
    "RankZeroCache",
    "World",
    "current_world",
    "init_from_environment",
    "on_rank_zero",
    "refuse_fsdp1",
    "shutdown",
]

T = TypeVar("T")
R = TypeVar("R", bound=Result)


@dataclass(frozen=True)
class World:
    """This process's rank among `size` processes of an initialised torch.distributed group."""

    rank: int
    size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, value: T) -> T:
        """Rank 0's value, on every rank."""
        import torch.distributed as dist

        box: list[Any] = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        found: T = box[0]
        return found

    def gather(self, value: T) -> list[T]:
        """Every rank's value, in rank order, on every rank."""
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, value)
        return gathered


def current_world() -> World | None:
    """The torch.distributed group this process belongs to, if one of two or more ranks is initialised."""
    # A process that never imported torch has no process group; do not pay for the import to find out.
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return World(dist.get_rank(), dist.get_world_size())


def init_from_environment() -> bool:
    """Join the process group a launcher (torchrun, accelerate launch) described in the environment.

    Returns whether this call initialised it (so the caller tears it down). NCCL where there is a GPU, each
    rank on its LOCAL_RANK device; gloo on CPU. Multi-node needs only the launcher's usual rendezvous."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise HarnessError(f"WORLD_SIZE must be a whole number, got '{os.environ['WORLD_SIZE']}'") from None
    if world_size < 2 or "MASTER_ADDR" not in os.environ or "RANK" not in os.environ:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_available() or dist.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")
    return True


def on_rank_zero(world: World | None, check: Callable[[], T]) -> T | None:
    """Run `check` on rank 0 only (it reads files only rank 0 may have); its value reaches every rank, and
    its error stops every rank as the same HarnessError."""
    if world is None:
        return check()
    outcome: tuple[bool, Any] = (True, None)
    failure: Exception | None = None
    if world.is_main:
        try:
            outcome = (True, check())
        except Exception as error:  # any error: the other ranks are already waiting in the broadcast
            outcome, failure = (False, _describe_error(error)), error
    ok, value = world.broadcast(outcome)
    if not ok:
        raise HarnessError(value) from failure
    found: T = value
    return found


def _describe_error(error: Exception) -> str:
    """An error as one rank tells the others: a HarnessError's own message, any other named by its type."""
    return str(error) if isinstance(error, HarnessError) else f"{type(error).__name__}: {error}"


def refuse_fsdp1(model: Any) -> None:
    """Stop before evaluating a model wrapped by FSDP1 (FullyShardedDataParallel): generation through its
    wrapper calls the inner model without the root's all-gather."""
    if uses_fsdp1(model):
        raise HarnessError(
            "FSDP1 (FullyShardedDataParallel) models are not supported: shard with FSDP2's fully_shard "
            "(Trainer: fsdp_config={'fsdp_version': 2}), or evaluate the saved checkpoint "
            "(harness run --model hf:PATH)"
        )


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class RankZeroCache(RequestCache):
    """Rank 0's request cache, seen alike by every rank: rank 0 looks up and writes, the others never open
    a file (on another node the path may not even exist)."""

    def __init__(self, inner: RequestCache, world: World) -> None:
        super().__init__(inner.path)
        self.inner = inner
        self.world = world

    def __repr__(self) -> str:
        return f"RankZeroCache({str(self.path)!r}, rank={self.world.rank})"

    def close(self) -> None:
        self.inner.close()

    def sources(self) -> list[RequestCache]:
        return self.inner.sources()

    # Every call ends in a broadcast, even a write: a failed write on rank 0 must stop the other ranks
    # here, not leave them waiting in the next collective.
    def lookup(self, fingerprint: str, requests: Sequence[Request]) -> list[Result | None]:
        return on_rank_zero(self.world, lambda: self.inner.lookup(fingerprint, requests)) or []

    def store(self, fingerprint: str, requests: Sequence[Request], results: Sequence[Result]) -> None:
        on_rank_zero(self.world, lambda: self.inner.store(fingerprint, requests, results))

    def label(self, fingerprint: str, name: str) -> None:
        on_rank_zero(self.world, lambda: self.inner.label(fingerprint, name))

    def count(self, fingerprint: str | None = None) -> int:
        return on_rank_zero(self.world, lambda: self.inner.count(fingerprint)) or 0


class DistributedAdapter:
    """A model adapter whose every batch is served by all ranks together: each rank its share, or, for a
    model sharded across the ranks (`replicated`), every rank all of it in lockstep."""

    def __init__(self, inner: ModelAdapter, world: World, *, replicated: bool = False) -> None:
        self.inner = inner
        self.world = world
        self.replicated = replicated
        # Every rank computes it and rank 0's is the one; a rank that fails must still reach the gather,
        # or the others wait in it forever.
        outcome: tuple[bool, str]
        try:
            outcome = (True, inner.fingerprint)
        except Exception as error:
            outcome = (False, _describe_error(error))
        gathered: list[tuple[bool, str]] = world.gather(outcome)
        failures = [f"rank {rank}: {detail}" for rank, (ok, detail) in enumerate(gathered) if not ok]
        if failures:
            raise HarnessError("model fingerprint failed on " + "; ".join(failures))
        fingerprints = [detail for _, detail in gathered]
        # A sharded model's ranks each hashed their own shard: the model is all of them together.
        self._fingerprint = (
            hashlib.sha256("|".join(fingerprints).encode()).hexdigest() if replicated else fingerprints[0]
        )

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def provenance(self) -> dict[str, Any]:
        record = {**self.inner.provenance(), "world_size": self.world.size}
        return {**record, "sharded_model": True} if self.replicated else record

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        if not isinstance(self.inner, ChatTemplateAdapter):
            raise HarnessError(f"model {self.inner.name} cannot apply a chat template")
        return self.inner.apply_chat_template(messages, add_generation_prompt)

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        return self._serve(requests, self.inner.loglikelihood, LoglikelihoodResult, progress)

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]:
        return self._serve(requests, self.inner.loglikelihood_rolling, RollingLoglikelihoodResult, progress)

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        return self._serve(requests, self.inner.generate, GenerationResult, progress)

    def _serve(
        self, requests: Sequence[Any], method: Any, result_type: type[R], progress: ProgressCallback | None
    ) -> list[R]:
        if self.replicated:
            return self._serve_replicated(requests, method, result_type, progress)
        # Every rank holds the same requests in the same order (the runner is deterministic), so every
        # rank computes the same split without talking to the others.
        shares = split_requests(requests, self.world.size)
        mine = shares[self.world.rank]
        outcome: tuple[bool, Any]
        try:
            served_here = list(method(mine, progress if self.world.is_main else None)) if mine else []
            outcome = (True, served_here)
        except Exception as error:  # every rank must reach the gather, or the others wait forever
            outcome = (False, f"{type(error).__name__}: {error}")
        gathered: list[tuple[bool, Any]] = self.world.gather(outcome)
        failures = [f"rank {rank}: {detail}" for rank, (ok, detail) in enumerate(gathered) if not ok]
        if failures:
            raise HarnessError("distributed evaluation failed on " + "; ".join(failures))
        by_request: dict[Any, R] = {}
        other_requests = other_tokens = 0
        for rank, (share, (_, served)) in enumerate(zip(shares, gathered, strict=True)):
            answers: list[Any] = served
            if len(answers) != len(share):
                raise HarnessError(f"rank {rank} answered {len(answers)} of {len(share)} requests")
            for request, answer in zip(share, answers, strict=True):
                if not isinstance(answer, result_type):
                    raise HarnessError(f"rank {rank} returned a {type(answer).__name__}")
                by_request[request] = answer
            if rank != self.world.rank:
                other_requests += len(share)
                other_tokens += sum(answer.num_tokens for answer in answers)
        if progress is not None and self.world.is_main and other_requests:
            progress(other_requests, other_tokens)
        return [by_request[request] for request in requests]

    def _serve_replicated(
        self, requests: Sequence[Any], method: Any, result_type: type[R], progress: ProgressCallback | None
    ) -> list[R]:
        """Every rank serves every request (the same forward calls, which a sharded model's all-gathers
        need); rank 0's answers become every rank's, so all ranks score exactly the same."""
        served: list[Any] = []
        failure: str | None = None
        try:
            served = list(method(requests, progress if self.world.is_main else None))
        except Exception as error:
            # Raised outside a collective (bad input, a tokenizer error): every rank still reaches the
            # gather and stops with it. A failure inside a forward call (one GPU out of memory) leaves
            # the other ranks in FSDP's all-gather; only the launcher's timeout ends that.
            failure = f"{type(error).__name__}: {error}"
        gathered: list[str | None] = self.world.gather(failure)
        failures = [f"rank {rank}: {detail}" for rank, detail in enumerate(gathered) if detail is not None]
        if failures:
            raise HarnessError("distributed evaluation failed on " + "; ".join(failures))
        answers: list[Any] = self.world.broadcast(served)
        if len(answers) != len(requests) or not all(isinstance(a, result_type) for a in answers):
            raise HarnessError(f"rank 0 answered {len(answers)} of {len(requests)} requests")
        return answers
