"""`openai` adapter: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI, transformers serve, OpenAI).

`--model openai:MODEL --model-args base_url=http://127.0.0.1:8000/v1` (or `OPENAI_BASE_URL`; the key comes
from `api_key=` or `OPENAI_API_KEY`). Plain prompts go to /completions and chat prompts to
/chat/completions (`endpoint=chat` sends plain prompts there too, as one user message). Loglikelihoods
come from prompt echo, as lm-eval's completion backends get them: the server echoes context + continuation
with per-token logprobs and text offsets, and the tokens that carry continuation text are summed. Only the
standard library is used, so the adapter adds no dependency.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from harness.adapters.base import ProgressCallback
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
MODEL_ARGS = frozenset(
    {"base_url", "api_key", "endpoint", "concurrency", "batch_size", "max_retries", "timeout"}
    | {"retry_backoff", "revision", "name"}
)
# The OpenAI API accepts at most four stop sequences; any others are applied to the text on our side.
MAX_SERVER_STOPS = 4
MAX_BACKOFF_S = 60.0
R = TypeVar("R", bound=Result)


class _Cancelled(Exception):
    """Another request of the same call failed, so this one stops instead of retrying."""


@dataclass(frozen=True)
class ServerSettings:
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    endpoint: Endpoint = "auto"
    concurrency: int = 4
    batch_size: int = 1  # prompts per /completions call when scoring; generation sends one each
    max_retries: int = 5
    timeout: float = 120.0
    retry_backoff: float = 1.0
    revision: str | None = None
    name: str | None = None


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


def parse_settings(target: str, model_args: Mapping[str, str]) -> ServerSettings:
    unknown = sorted(set(model_args) - MODEL_ARGS)
    if unknown:
        known = ", ".join(sorted(MODEL_ARGS))
        raise HarnessError(f"openai adapter: unknown --model-args key '{unknown[0]}' (known: {known})")
    if not target:
        raise HarnessError("openai adapter needs a model name: --model openai:MODEL")
    # No default server: evaluation prompts are never sent to a paid API that nobody named.
    base_url = (model_args.get("base_url") or os.environ.get("OPENAI_BASE_URL", "")).rstrip("/")
    if not base_url:
        raise HarnessError(
            "openai adapter: no server given; pass --model-args base_url=http://HOST:PORT/v1 "
            "or set OPENAI_BASE_URL"
        )
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HarnessError(f"openai adapter: base_url must be an http(s) URL, not '{base_url}'")
    if parts.path in ("", "/"):
        base_url += "/v1"  # every OpenAI-compatible server serves the API under /v1
    endpoint = model_args.get("endpoint", "auto")
    if endpoint not in ENDPOINTS:
        raise HarnessError(f"openai adapter: endpoint must be auto or chat, not '{endpoint}'")
    return ServerSettings(
        base_url=base_url,
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
    )


def _server_message(data: bytes) -> str:
    """The error text of an OpenAI-style, FastAPI-style or plain-text error body, on one short line."""
    text = data.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        text = str(error.get("message", error) if isinstance(error, dict) else error)
    return " ".join(text.split())[:300] or "(empty body)"


class ServerClient:
    """POSTs JSON to one server with keep-alive connections, retries and timeouts; thread-safe."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        parts = urlsplit(settings.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def error(self, message: str) -> HarnessError:
        return HarnessError(
            f"openai adapter ({self.settings.base_url}, model {self.settings.model}): {message}"
        )

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self.settings.timeout), False

    def _send(self, path: str, payload: bytes, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        connection, reused = self._connection()
        try:
            connection.request("POST", self._prefix + path, payload, headers)
            response = connection.getresponse()
            data = response.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            connection.close()
            if not reused:
                raise
            # The server closed an idle keep-alive connection: not a failure, so no retry is spent on it.
            return self._send(path, payload, headers)
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.append(connection)
        return response.status, data, response.getheader("Retry-After")

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The decoded JSON reply; 429, 5xx, timeouts and dropped connections are retried with backoff."""
        settings = self.settings
        payload = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        last_failure = ""
        for attempt in range(settings.max_retries + 1):
            if self.cancelled.is_set():
                raise _Cancelled
            try:
                status, data, retry_after = self._send(path, payload, headers)
            except ConnectionRefusedError:
                raise self.error("cannot reach the server (connection refused)") from None
            except socket.gaierror as exc:
                raise self.error(f"cannot resolve host '{self._host}' ({exc.strerror})") from None
            except TimeoutError:
                status, data, retry_after = 0, b"", None
                last_failure = f"no reply within {settings.timeout:g} s"
            except (OSError, http.client.HTTPException) as exc:
                status, data, retry_after = 0, b"", None
                last_failure = f"connection failed ({type(exc).__name__}: {exc})"
            if status == 200:
                return self._decode(path, data)
            if status in (401, 403):
                raise self.error(
                    f"the server rejected the API key (HTTP {status}: {_server_message(data)}); "
                    "set OPENAI_API_KEY or --model-args api_key=..."
                )
            if status and status != 429 and status < 500:
                raise self.error(f"{path} failed with HTTP {status}: {_server_message(data)}")
            if status:
                last_failure = f"HTTP {status}: {_server_message(data)}"
            if attempt < settings.max_retries:
                self._backoff(attempt, retry_after)
        raise self.error(f"{path} failed after {settings.max_retries + 1} attempts; last: {last_failure}")

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        delay = self.settings.retry_backoff * 2**attempt * random.uniform(0.5, 1.0)
        if retry_after is not None and retry_after.strip().replace(".", "", 1).isdigit():
            delay = float(retry_after)  # the server knows best when it will have capacity again
        if self.cancelled.wait(min(delay, MAX_BACKOFF_S)):
            raise _Cancelled

    def _decode(self, path: str, data: bytes) -> dict[str, Any]:
        try:
            body = json.loads(data)
        except ValueError:
            snippet = " ".join(data.decode("utf-8", "replace").split())[:80]
            raise self.error(f"{path} returned malformed JSON: {snippet!r}") from None
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise self.error(f"{path} returned JSON without a list of choices")
        return dict(body)


def _token_spans(logprobs: Mapping[str, Any]) -> list[tuple[int, int]] | None:
    tokens, offsets = logprobs.get("tokens"), logprobs.get("text_offset")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        return None
    if offsets is None:  # some servers omit offsets; echoed tokens then add up to the text
        offsets = [0, *accumulate(len(token) for token in tokens[:-1])]
    if not isinstance(offsets, list) or len(offsets) != len(tokens):
        return None
    ends = [*offsets[1:], offsets[-1] + len(tokens[-1])] if tokens else []
    return list(zip(offsets, ends, strict=True))


class OpenAIAdapter:
    """A model behind an OpenAI-compatible HTTP API; requests run `concurrency` at a time."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.client = ServerClient(settings)

    @property
    def name(self) -> str:
        return self.settings.name or self.settings.model

    @property
    def fingerprint(self) -> str:
        # Remote weights cannot be hashed: the server, model name and a user-given revision stand in.
        # The endpoint is included because chat and plain completions answer the same prompt differently.
        s = self.settings
        identity = "\n".join(("openai", s.base_url, s.model, s.revision or "", s.endpoint))
        return hashlib.sha256(identity.encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        settings = {key: value for key, value in asdict(self.settings).items() if key != "api_key"}
        return {"adapter": "openai", **settings, "dtype": "remote", "device": "remote"}

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[LoglikelihoodResult]:
        return self._echo_batches([(r.context + r.continuation, len(r.context)) for r in requests], progress)

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], progress: ProgressCallback | None = None
    ) -> list[RollingLoglikelihoodResult]:
        # No local tokenizer, so no rolling windows: a text longer than the server's context is an error.
        scored = self._echo_batches([(r.text, 0) for r in requests], progress)
        return [RollingLoglikelihoodResult(result.logprob, result.num_tokens) for result in scored]

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        def work(indices: list[int]) -> list[GenerationResult]:
            return [self._generate_one(requests[index]) for index in indices]

        return self._run([[index] for index in range(len(requests))], work, progress)

    # -- scoring through echo ----------------------------------------------------------------------------

    def _echo_batches(
        self, spans: Sequence[tuple[str, int]], progress: ProgressCallback | None
    ) -> list[LoglikelihoodResult]:
        """Score each (prompt, continuation start) from the prompt's echo, `batch_size` prompts a call."""
        if self.settings.endpoint == "chat":
            raise self.client.error(
                "endpoint=chat cannot score loglikelihood requests (chat completions do not echo the "
                "prompt); use endpoint=auto"
            )

        def work(indices: list[int]) -> list[LoglikelihoodResult]:
            prompts = [spans[i][0] for i in indices]
            # max_tokens=1 rather than 0, as lm-eval asks: some servers reject 0; the extra token is dropped.
            body = {"model": self.settings.model, "max_tokens": 1, "echo": True, "logprobs": 1}
            reply = self.client.post(
                "/completions", {**body, "prompt": prompts[0] if len(prompts) == 1 else prompts}
            )
            choices = sorted(reply["choices"], key=lambda c: int(c.get("index", 0)))
            if len(choices) != len(prompts):
                raise self.client.error(
                    f"/completions returned {len(choices)} choices for {len(prompts)} prompts"
                )
            return [self._score_echo(c, *spans[i]) for i, c in zip(indices, choices, strict=True)]

        size = self.settings.batch_size
        groups = [list(range(i, min(i + size, len(spans)))) for i in range(0, len(spans), size)]
        return self._run(groups, work, progress)

    def _score_echo(self, choice: Mapping[str, Any], prompt: str, start: int) -> LoglikelihoodResult:
        """Sum the logprobs of the echoed tokens that carry text from `start` on (the continuation).

        A token that straddles the boundary (a context's trailing space merged into " word") carries
        continuation text, so it counts. Tokens at or after the end of the prompt were generated.
        """
        logprobs = choice.get("logprobs")
        text = choice.get("text")
        spans = _token_spans(logprobs) if isinstance(logprobs, dict) else None
        values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
        echoed = isinstance(text, str) and text.startswith(prompt)
        if spans is None or not isinstance(values, list) or not echoed:
            raise self.client.error(
                "the server does not return prompt logprobs (/completions with echo=true, logprobs=1), so it "
                "cannot serve loglikelihood requests; use one that does (vLLM, llama.cpp) or generation only"
            )
        tops = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
        total, greedy, count = 0.0, True, 0
        for index, ((begin, end), value) in enumerate(zip(spans, values, strict=False)):
            if begin >= len(prompt) or end <= start:
                continue
            if value is None and index == 0:
                continue  # the prompt's first token has nothing to be conditioned on
            top = tops[index] if isinstance(tops, list) and index < len(tops) else None
            if not isinstance(value, int | float) or not isinstance(top, dict) or not top:
                raise self.client.error(f"/completions returned no logprob or top_logprobs for token {index}")
            total += float(value)
            count += 1
            greedy = greedy and float(value) >= max(float(v) for v in top.values()) - 1e-6
        if count == 0:
            raise self.client.error(f"the server scored no token of the continuation {prompt[start:][:40]!r}")
        return LoglikelihoodResult(total, greedy, count)

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
        """Run `work` on each group of request positions, `concurrency` groups at a time, in order."""
        results: dict[int, R] = {}
        failure: BaseException | None = None
        self.client.cancelled.clear()
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="openai")

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
                    if error is not None and not isinstance(error, _Cancelled):
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
