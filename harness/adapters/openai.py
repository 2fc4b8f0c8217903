"""`openai` adapter: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI, transformers serve, OpenAI),
or a pool of them serving the same model.

`--model openai:MODEL --model-args base_url=http://127.0.0.1:8000/v1` (or `OPENAI_BASE_URL`; the key comes
from `api_key=` or `OPENAI_API_KEY`). Several comma-separated base URLs make a pool (see `endpoint_pool`):
`concurrency` is then per endpoint. Plain prompts go to /completions and chat prompts to
/chat/completions (`endpoint=chat` sends plain prompts there too, as one user message). Loglikelihoods
come from the server's prompt logprobs (see `server_scoring`): vLLM's `prompt_logprobs` parameter where the
server takes it, else prompt echo as lm-eval's completion backends get them (`scoring=auto`, the default,
finds out with the first request; `scoring=prompt_logprobs` or `scoring=echo` insists on one). Only the
standard library is used, so the adapter adds no dependency.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from harness.adapters.base import ProgressCallback, refuse_unknown_model_args
from harness.adapters.endpoint_pool import (
    Cancelled,
    EndpointPool,
    PoolSettings,
    RejectedRequest,
    split_base_urls,
)
from harness.adapters.server_scoring import (
    PromptToken,
    ScoringError,
    continuation_score,
    tokens_from_echo,
    tokens_from_prompt_logprobs,
)
from harness.errors import HarnessError, PartialResultsError
from harness.requests import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Result,
    RollingLoglikelihoodRequest,
    RollingLoglikelihoodResult,
)

Endpoint = Literal["auto", "chat"]
ENDPOINTS: tuple[Endpoint, ...] = ("auto", "chat")
Scoring = Literal["auto", "prompt_logprobs", "echo"]
SCORINGS: tuple[Scoring, ...] = ("auto", "prompt_logprobs", "echo")
MODEL_ARGS = frozenset(
    {"base_url", "api_key", "endpoint", "concurrency", "batch_size", "max_retries", "timeout"}
    | {"retry_backoff", "revision", "name", "scoring"}
)
# The OpenAI API accepts at most four stop sequences; any others are applied to the text on our side.
MAX_SERVER_STOPS = 4
R = TypeVar("R", bound=Result)


@dataclass(frozen=True)
class ServerSettings:
    base_urls: tuple[str, ...]
    model: str
    api_key: str | None = field(default=None, repr=False)
    endpoint: Endpoint = "auto"
    concurrency: int = 4  # per endpoint
    batch_size: int = 1  # prompts per /completions call when scoring; generation sends one each
    max_retries: int = 5
    timeout: float = 120.0
    retry_backoff: float = 1.0
    revision: str | None = None
    name: str | None = None
    scoring: Scoring = "auto"


def _number(args: Mapping[str, str], key: str, default: float, minimum: float, kind: type = int) -> Any:
    if args.get(key) == "auto":  # `--batch-size auto` and friends: the adapter's own choice
        return default
    try:
        value = kind(args.get(key, default))
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise HarnessError(f"openai adapter: {key} must be a number ≥ {minimum:g}, not '{args[key]}'")
    return value


def _base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HarnessError(f"openai adapter: base_url must be an http(s) URL, not '{base_url}'")
    if parts.path in ("", "/"):
        base_url += "/v1"  # every OpenAI-compatible server serves the API under /v1
    return base_url


def parse_settings(target: str, model_args: Mapping[str, str]) -> ServerSettings:
    refuse_unknown_model_args("openai", model_args, MODEL_ARGS)
    if not target:
        raise HarnessError("openai adapter needs a model name: --model openai:MODEL")
    # No default server: evaluation prompts are never sent to a paid API that nobody named.
    base_urls = split_base_urls(model_args.get("base_url") or os.environ.get("OPENAI_BASE_URL", ""))
    if not base_urls:
        raise HarnessError(
            "openai adapter: no server given; pass --model-args base_url=http://HOST:PORT/v1 "
            "(several, comma-separated, make a pool) or set OPENAI_BASE_URL"
        )
    endpoint = model_args.get("endpoint", "auto")
    if endpoint not in ENDPOINTS:
        raise HarnessError(f"openai adapter: endpoint must be auto or chat, not '{endpoint}'")
    scoring = model_args.get("scoring", "auto")
    if scoring not in SCORINGS:
        raise HarnessError(f"openai adapter: scoring must be auto, prompt_logprobs or echo, not '{scoring}'")
    return ServerSettings(
        base_urls=tuple(dict.fromkeys(_base_url(url) for url in base_urls)),
        model=target,
        api_key=model_args.get("api_key") or os.environ.get("OPENAI_API_KEY") or None,
        endpoint="chat" if endpoint == "chat" else "auto",
        concurrency=_number(model_args, "concurrency", 4, 1),
        batch_size=_number(model_args, "batch_size", 1, 1),
        max_retries=_number(model_args, "max_retries", 5, 0),
        timeout=_number(model_args, "timeout", 120.0, 0.001, float),
        retry_backoff=_number(model_args, "retry_backoff", 1.0, 0, float),
        revision=model_args.get("revision"),
        name=model_args.get("name"),
        scoring=next(s for s in SCORINGS if s == scoring),
    )


class OpenAIAdapter:
    """A model behind an OpenAI-compatible API, or a pool of them; `concurrency` requests per endpoint."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.client = EndpointPool(
            PoolSettings(
                base_urls=settings.base_urls,
                model=settings.model,
                api_key=settings.api_key,
                concurrency=settings.concurrency,
                max_retries=settings.max_retries,
                timeout=settings.timeout,
                retry_backoff=settings.retry_backoff,
            )
        )
        # How this server gives prompt logprobs, once known; `auto` finds out with the first request.
        self._scoring: Scoring | None = None if settings.scoring == "auto" else settings.scoring
        self._scoring_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.settings.name or self.settings.model

    @property
    def fingerprint(self) -> str:
        # Remote weights cannot be hashed: the server(s), model name and a user-given revision stand in.
        # The endpoint is included because chat and plain completions answer the same prompt differently.
        s = self.settings
        servers = ",".join(sorted(s.base_urls))
        identity = "\n".join(("openai", servers, s.model, s.revision or "", s.endpoint))
        return hashlib.sha256(identity.encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        settings = {key: value for key, value in asdict(self.settings).items() if key != "api_key"}
        endpoints = [asdict(cost) for cost in self.client.costs()]
        scoring = self._scoring or "unused"
        return {
            "adapter": "openai",
            **settings,
            "scoring_used": scoring,
            "endpoints": endpoints,
            "dtype": "remote",
            "device": "remote",
        }

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        return self._score([(r.context + r.continuation, len(r.context)) for r in requests], progress)

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]:
        # No local tokenizer, so no rolling windows: a text longer than the server's context is an error.
        scored = self._score([(r.text, 0) for r in requests], progress)
        return [RollingLoglikelihoodResult(result.logprob, result.num_tokens) for result in scored]

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        def work(indices: list[int]) -> list[GenerationResult]:
            return [self._generate_one(requests[index]) for index in indices]

        return self._run([[index] for index in range(len(requests))], work, progress)

    # -- scoring through prompt logprobs -----------------------------------------------------------------

    def _score(
        self, spans: Sequence[tuple[str, int]], progress: ProgressCallback | None
    ) -> list[LoglikelihoodResult]:
        """Score each (prompt, continuation start) from the prompt's logprobs, `batch_size` prompts a call."""
        if self.settings.endpoint == "chat":
            raise self.client.error(
                "endpoint=chat cannot score loglikelihood requests (chat completions do not return "
                "prompt logprobs); use endpoint=auto"
            )

        def work(indices: list[int]) -> list[LoglikelihoodResult]:
            group = [spans[i] for i in indices]
            with self._scoring_lock:  # the first group finds out how; the others wait for the answer
                if self._scoring is None:
                    return self._probe(group)
                scoring = self._scoring
            scored = self._score_with(scoring, group, probing=False)
            assert scored is not None  # only a probe is answered with None
            return scored

        size = self.settings.batch_size
        groups = [list(range(i, min(i + size, len(spans)))) for i in range(0, len(spans), size)]
        return self._run(groups, work, progress)

    def _probe(self, group: list[tuple[str, int]]) -> list[LoglikelihoodResult]:
        """Try vLLM's prompt_logprobs, then echo; the answer holds for the adapter's life."""
        try:
            scored = self._score_with("prompt_logprobs", group, probing=True)
        except RejectedRequest:  # a strict server refuses the parameter it does not know
            scored = None
        if scored is not None:
            self._scoring = "prompt_logprobs"
            return scored
        refusal = ""
        try:
            scored = self._score_with("echo", group, probing=True)
        except RejectedRequest as error:
            refusal = f" ({str(error).split('): ', 1)[-1]})"
        if scored is None:
            raise self.client.error(
                "the server does not return prompt logprobs (neither vLLM's prompt_logprobs nor "
                f"/completions with echo=true, logprobs=1){refusal}, so it cannot serve loglikelihood "
                "requests; use one that does (vLLM, SGLang, llama.cpp) or generation only"
            )
        self._scoring = "echo"
        return scored

    def _score_with(
        self, scoring: Scoring, group: list[tuple[str, int]], *, probing: bool
    ) -> list[LoglikelihoodResult] | None:
        """One /completions call for the group; None (when probing) if the reply lacks prompt logprobs."""
        prompts = [prompt for prompt, _ in group]
        # max_tokens=1 rather than 0, as lm-eval asks: some servers reject 0; the extra token is dropped.
        body: dict[str, Any] = {"model": self.settings.model, "max_tokens": 1, "temperature": 0.0}
        if scoring == "prompt_logprobs":
            body["prompt_logprobs"] = 0  # the prompt token's own logprob and rank; no alternatives needed
        else:
            body.update(echo=True, logprobs=1)
        reply = self.client.post(
            "/completions", {**body, "prompt": prompts[0] if len(prompts) == 1 else prompts}
        )
        choices = sorted(reply["choices"], key=lambda c: int(c.get("index", 0)))
        if len(choices) != len(prompts):
            raise self.client.error(
                f"/completions returned {len(choices)} choices for {len(prompts)} prompts"
            )
        read = tokens_from_prompt_logprobs if scoring == "prompt_logprobs" else tokens_from_echo
        results = []
        for choice, (prompt, start) in zip(choices, group, strict=True):
            try:
                tokens: list[PromptToken] | None = read(choice, prompt)
                if tokens is None:
                    if probing:
                        return None
                    raise ScoringError(_MISSING[scoring])
                results.append(continuation_score(tokens, prompt, start))
            except ScoringError as error:
                raise self.client.error(str(error)) from None
        return results

    # -- generation ------------------------------------------------------------------------------------

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        settings = request.settings
        body = {"model": self.settings.model, **_sampling(settings)}
        if isinstance(request.prompt, str) and self.settings.endpoint != "chat":
            reply = self.client.post("/completions", {**body, "prompt": request.prompt})
            text = reply["choices"][0].get("text")
        else:
            messages = (
                [{"role": "user", "content": request.prompt}]
                if isinstance(request.prompt, str)
                else [{"role": m.role, "content": m.content} for m in request.prompt]
            )
            reply = self.client.post("/chat/completions", {**body, "messages": messages})
            message = reply["choices"][0].get("message")
            text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise self.client.error("the server returned a choice without text")
        for stop in settings.stop:  # servers may ignore stops, and only four are sent
            if stop:
                text = text.split(stop)[0]
        usage = reply.get("usage")
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        return GenerationResult(text, tokens if isinstance(tokens, int) else 0)

    # -- bounded concurrency ---------------------------------------------------------------------------

    def _run(
        self,
        groups: list[list[int]],
        work: Callable[[list[int]], list[R]],
        progress: ProgressCallback | None,
    ) -> list[R]:
        """Run `work` on each group of request positions, as many at a time as the pool takes, in order."""
        results: dict[int, R] = {}
        failure: BaseException | None = None
        self.client.cancelled.clear()
        pool = ThreadPoolExecutor(max_workers=self.client.capacity, thread_name_prefix="openai")

        def guarded(group: list[int]) -> list[R]:
            try:
                return work(group)
            except BaseException:
                self.client.cancelled.set()  # before this worker can take up the next queued group
                raise

        pending: dict[Future[list[R]], list[int]] = {pool.submit(guarded, group): group for group in groups}
        try:
            while pending and failure is None:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    indices = pending.pop(future)
                    error = future.exception()
                    if error is not None and not isinstance(error, Cancelled):
                        failure = failure or error
                    elif error is None:
                        results.update(zip(indices, future.result(), strict=True))
                        if progress is not None:
                            progress(len(indices), sum(results[i].num_tokens for i in indices))
        finally:
            if pending:  # a failure or an interrupt: stop queued and retrying requests at once
                self.client.cancelled.set()
            pool.shutdown(wait=True, cancel_futures=True)
        for future, indices in pending.items():  # requests that were on the wire when another failed
            if not future.cancelled() and future.exception() is None:
                results.update(zip(indices, future.result(), strict=True))
        if failure is not None:
            if isinstance(failure, HarnessError):
                raise PartialResultsError(str(failure), results) from failure
            raise failure
        return [results[i] for i in range(len(results))]


_MISSING: dict[Scoring, str] = {
    "auto": "",
    "prompt_logprobs": "the server does not return prompt logprobs through vLLM's prompt_logprobs parameter "
    "(scoring=prompt_logprobs), so it cannot serve loglikelihood requests; try scoring=auto",
    "echo": "the server does not return prompt logprobs (/completions with echo=true, logprobs=1), so it "
    "cannot serve loglikelihood requests; try scoring=auto, or use generation only",
}


def _sampling(settings: GenerationSettings) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": settings.max_tokens}
    if settings.do_sample:
        body.update(temperature=settings.temperature, top_p=settings.top_p)
    else:
        body["temperature"] = 0.0  # greedy on every OpenAI-compatible server
    if settings.seed is not None:
        body["seed"] = settings.seed
    stops = [stop for stop in settings.stop if stop][:MAX_SERVER_STOPS]
    if stops:
        body["stop"] = stops
    return body


def load_openai_adapter(target: str, model_args: Mapping[str, str]) -> OpenAIAdapter:
    return OpenAIAdapter(parse_settings(target, model_args))
