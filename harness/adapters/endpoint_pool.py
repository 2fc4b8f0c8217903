"""A pool of OpenAI-compatible endpoints serving one model: where each request goes, retries and failover.

Each request goes to the least-loaded healthy endpoint with a free slot (at most `concurrency` requests in
flight per endpoint). An endpoint that fails (no connection, a dropped connection, a timeout, HTTP 429 or
5xx) while another endpoint is healthy is taken out for `OUT_SECONDS` and the request is sent elsewhere at
once; the last healthy endpoint is retried with backoff, as a lone server is. Requests the server rejects
(other 4xx, malformed replies) fail at once wherever they were sent. Each endpoint counts its requests,
failures, busy seconds and tokens for the run's provenance. Only the standard library is used.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.errors import HarnessError

MAX_BACKOFF_S = 60.0
# Long enough that a dead server costs each chunk of a run one refused connection at most, short enough
# that a restarted one rejoins during a long run.
OUT_SECONDS = 30.0


class Cancelled(Exception):
    """Another request of the same call failed, so this one stops instead of retrying."""


class RejectedRequest(HarnessError):
    """The server answered with a client error (4xx other than 401/403/429): the request itself is wrong."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PoolSettings:
    base_urls: tuple[str, ...]
    model: str
    api_key: str | None
    concurrency: int  # per endpoint
    max_retries: int
    timeout: float
    retry_backoff: float


@dataclass(frozen=True)
class EndpointCost:
    """What one endpoint served during the adapter's life, for the run's provenance."""

    base_url: str
    requests: int
    failures: int
    busy_seconds: float
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class _Attempt:
    status: int  # 0: no HTTP reply
    data: bytes = b""
    retry_after: str | None = None
    failure: str = ""


def server_message(data: bytes) -> str:
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


class Endpoint:
    """One server: keep-alive connections, load and health; its counters are guarded by the pool's lock."""

    def __init__(self, base_url: str, model: str, timeout: float) -> None:
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.out_until = 0.0
        self.requests = self.failures = self.prompt_tokens = self.completion_tokens = 0
        self.busy_seconds = 0.0

    def error(self, message: str) -> HarnessError:
        return HarnessError(f"openai adapter ({self.base_url}, model {self.model}): {message}")

    def cost(self) -> EndpointCost:
        return EndpointCost(
            self.base_url,
            self.requests,
            self.failures,
            round(self.busy_seconds, 3),
            self.prompt_tokens,
            self.completion_tokens,
        )

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self.host, self._port, timeout=self.timeout), False

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

    def attempt(self, path: str, payload: bytes, headers: dict[str, str]) -> _Attempt:
        """One POST; network failures come back as an attempt without a status."""
        try:
            status, data, retry_after = self._send(path, payload, headers)
        except ConnectionRefusedError:
            return _Attempt(0, failure="cannot reach the server (connection refused)")
        except socket.gaierror as exc:
            raise self.error(f"cannot resolve host '{self.host}' ({exc.strerror})") from None
        except TimeoutError:
            return _Attempt(0, failure=f"no reply within {self.timeout:g} s")
        except (OSError, http.client.HTTPException) as exc:
            return _Attempt(0, failure=f"connection failed ({type(exc).__name__}: {exc})")
        failure = "" if status == 200 else f"HTTP {status}: {server_message(data)}"
        return _Attempt(status, data, retry_after, failure)


class EndpointPool:
    """POSTs JSON to the pool's endpoints with retries, timeouts and failover; thread-safe."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.endpoints = [Endpoint(url, settings.model, settings.timeout) for url in settings.base_urls]
        self._condition = threading.Condition()
        self.cancelled = threading.Event()

    @property
    def capacity(self) -> int:
        """Requests that may be in flight at once across the pool."""
        return self.settings.concurrency * len(self.endpoints)

    def error(self, message: str) -> HarnessError:
        if len(self.endpoints) == 1:
            return self.endpoints[0].error(message)
        count = len(self.endpoints)
        return HarnessError(f"openai adapter ({count} endpoints, model {self.settings.model}): {message}")

    def costs(self) -> list[EndpointCost]:
        with self._condition:
            return [endpoint.cost() for endpoint in self.endpoints]

    def _acquire(self) -> Endpoint:
        with self._condition:
            while True:
                if self.cancelled.is_set():
                    raise Cancelled
                now = time.monotonic()
                free = [
                    e
                    for e in self.endpoints
                    if e.out_until <= now and e.in_flight < self.settings.concurrency
                ]
                if free:
                    chosen = min(free, key=lambda e: (e.in_flight, e.requests))
                    chosen.in_flight += 1
                    chosen.requests += 1
                    return chosen
                # Woken by a release; the timeout notices an endpoint whose time out has ended.
                self._condition.wait(timeout=0.25)

    def _release(self, endpoint: Endpoint, started: float, attempt: _Attempt, reply: Any) -> bool:
        """Book the attempt; a failed endpoint is taken out when another is healthy (True: try elsewhere)."""
        with self._condition:
            endpoint.in_flight -= 1
            endpoint.busy_seconds += time.monotonic() - started
            usage = reply.get("usage") if isinstance(reply, dict) else None
            if isinstance(usage, dict):
                for key in ("prompt_tokens", "completion_tokens"):
                    if isinstance(usage.get(key), int):
                        setattr(endpoint, key, getattr(endpoint, key) + usage[key])
            failed = attempt.status == 0 or attempt.status == 429 or attempt.status >= 500
            moved = False
            if failed:
                endpoint.failures += 1
                now = time.monotonic()
                if any(e is not endpoint and e.out_until <= now for e in self.endpoints):
                    endpoint.out_until = now + OUT_SECONDS
                    moved = True
            self._condition.notify_all()
            return moved

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The decoded JSON reply; 429, 5xx, timeouts, dropped and refused connections are retried.

        Refusals are retried because a lone server that is restarting, or the last of a pool whose others are
        out, refuses for a few seconds and then serves again.
        """
        settings = self.settings
        payload = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        retries = 0
        while True:
            endpoint = self._acquire()
            started = time.monotonic()
            reply: dict[str, Any] | None = None
            attempt = _Attempt(0, failure="interrupted")
            try:
                attempt = endpoint.attempt(path, payload, headers)
                if attempt.status == 200:
                    reply = self._decode(endpoint, path, attempt.data)
            finally:
                moved = self._release(endpoint, started, attempt, reply)
            if reply is not None:
                return reply
            status = attempt.status
            if status in (401, 403):
                raise endpoint.error(
                    f"the server rejected the API key (HTTP {status}: {server_message(attempt.data)}); "
                    "set OPENAI_API_KEY or --model-args api_key=..."
                )
            if status and status != 429 and status < 500:
                message = f"{path} failed with HTTP {status}: {server_message(attempt.data)}"
                raise RejectedRequest(endpoint.error(message).args[0], status)
            if moved:
                continue  # another endpoint takes it at once; no retry is spent
            if retries >= settings.max_retries:
                raise endpoint.error(
                    f"{path} failed after {settings.max_retries + 1} attempts; last: {attempt.failure}"
                )
            self._backoff(retries, attempt.retry_after)
            retries += 1

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        if self.cancelled.is_set():
            raise Cancelled
        delay = self.settings.retry_backoff * 2**attempt * random.uniform(0.5, 1.0)
        if retry_after is not None and retry_after.strip().replace(".", "", 1).isdigit():
            delay = float(retry_after)  # the server knows best when it will have capacity again
        if self.cancelled.wait(min(delay, MAX_BACKOFF_S)):
            raise Cancelled

    @staticmethod
    def _decode(endpoint: Endpoint, path: str, data: bytes) -> dict[str, Any]:
        try:
            body = json.loads(data)
        except ValueError:
            snippet = " ".join(data.decode("utf-8", "replace").split())[:80]
            raise endpoint.error(f"{path} returned malformed JSON: {snippet!r}") from None
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise endpoint.error(f"{path} returned JSON without a list of choices")
        return dict(body)


def split_base_urls(value: str) -> tuple[str, ...]:
    """`http://a:8000/v1,http://b:8000/v1`: a pool's members, in the order given, without duplicates."""
    urls: Sequence[str] = [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
    return tuple(dict.fromkeys(urls))
