"""A scriptable OpenAI-compatible server on 127.0.0.1 for the `openai` adapter's tests.

It tokenises on whitespace-led words, gives every token a logprob that depends only on the text before it
and on the token (the prompt's first token gets none, as OpenAI's API does), echoes prompts with logprobs
and text offsets, answers vLLM's `prompt_logprobs` parameter in vLLM's shape, and generates deterministic
words. `script` lists what successive POSTs get: "ok",
"429", "500", "503", "slow" (replies after `slow_seconds`), "malformed" (a cut-off JSON body), "nologprobs",
"drop" (closes the connection without replying) or "401"; an exhausted script means "ok".
`python -m tests.adapters.fake_openai_server --delay S` serves in a process of its own (printing its base
URL), for tests that kill a server mid-run.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

TOKEN_PATTERN = re.compile(r"\s*\S+|\s+")
# The one alternative every top_logprobs list offers: a token is greedy when it beats this.
ALTERNATIVE_TOKEN = "<alt>"
ALTERNATIVE_LOGPROB = -2.0
GENERATED_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")


def tokenize(text: str) -> list[str]:
    return TOKEN_PATTERN.findall(text)


def token_logprob(prefix: str, token: str) -> float:
    """Between -4 and -0.5, a pure function of the text before the token and the token itself."""
    digest = hashlib.sha256(f"{prefix}\x1f{token}".encode()).digest()
    return -0.5 - 3.5 * int.from_bytes(digest[:8], "big") / 2**64


def generated_text(prompt: str, max_tokens: int) -> str:
    """Words chosen by the prompt, with a line break after every third word (for stop sequences)."""
    start = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(GENERATED_WORDS)
    words = [GENERATED_WORDS[(start + i) % len(GENERATED_WORDS)] for i in range(max_tokens)]
    return "".join(("\n" if i and i % 3 == 0 else " ") + word for i, word in enumerate(words))


def echo_logprobs(text: str) -> dict[str, Any]:
    tokens = tokenize(text)
    offsets, values, tops = [], [], []
    position = 0
    for index, token in enumerate(tokens):
        value = None if index == 0 else token_logprob(text[:position], token)
        offsets.append(position)
        values.append(value)
        tops.append(None if value is None else {token: value, ALTERNATIVE_TOKEN: ALTERNATIVE_LOGPROB})
        position += len(token)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def token_id(token: str) -> int:
    return int.from_bytes(hashlib.sha256(token.encode()).digest()[:3], "big") + 1


def prompt_logprobs(text: str) -> list[dict[str, dict[str, Any]] | None]:
    """vLLM's `prompt_logprobs` with 0 alternatives: each token's own logprob, rank and text."""
    entries: list[dict[str, dict[str, Any]] | None] = []
    for value, token in zip(echo_logprobs(text)["token_logprobs"], tokenize(text), strict=True):
        rank = 1 if value is not None and value >= ALTERNATIVE_LOGPROB else 2
        item = {"logprob": value, "rank": rank, "decoded_token": token}
        entries.append(None if value is None else {str(token_id(token)): item})
    return entries


class LoopbackServer:
    """A threaded HTTP server on a free 127.0.0.1 port: `_listen` binds it, the `with` block serves, and
    `base_url` is its OpenAI-style `/v1` root. The fake servers of these tests build on it."""

    _server: ThreadingHTTPServer
    _thread: threading.Thread
    _listening: bool

    def _listen(self, handler: type[BaseHTTPRequestHandler], *, listening: bool = True) -> None:
        """With `listening=False` the port is bound, so it is known and no one else takes it, but refuses
        connections, as a server still starting up does, until `listen()`."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
        try:
            self._server.server_bind()
            if listening:
                self._server.server_activate()
        except BaseException:
            self._server.server_close()
            raise
        self._server.daemon_threads = True
        self._listening = listening
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def listen(self) -> None:
        """Start listening and serving, inside the `with` block of a server made with `listening=False`."""
        self._server.server_activate()
        self._listening = True
        self._thread.start()

    def __enter__(self) -> Self:
        if self._listening:
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        served = self._thread.ident is not None
        if served:
            self._server.shutdown()
        self._server.server_close()
        if served:
            self._thread.join(timeout=5)


class FakeOpenAIServer(LoopbackServer):
    """`with FakeOpenAIServer() as server:` serves on `server.base_url` until the block ends."""

    def __init__(
        self,
        script: Iterable[str] = (),
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        slow_seconds: float = 2.0,
        honor_stop: bool = True,
        retry_after: str | None = None,
        listening: bool = True,
    ) -> None:
        self.script: deque[str] = deque(script)
        self.api_key = api_key
        self.delay = delay
        self.slow_seconds = slow_seconds
        self.honor_stop = honor_stop
        self.retry_after = retry_after
        self.requests: list[tuple[str, dict[str, Any], str | None]] = []  # (path, body, Authorization)
        self.in_flight = 0
        self.max_in_flight = 0
        # (start, end) of each POST on the monotonic clock: what was in flight at once across servers.
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        self._listen(_handler_class(self), listening=listening)

    def posts(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body, _ in self.requests if path is None or p.endswith(path)]

    def next_action(self) -> str:
        with self.lock:
            return self.script.popleft() if self.script else "ok"

    def reply(self, path: str, body: dict[str, Any], action: str) -> dict[str, Any]:
        if path.endswith("/chat/completions"):
            content = generated_text(json.dumps(body["messages"]), int(body.get("max_tokens", 16)))
            content = self._stop(content, body)
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
            return {"object": "chat.completion", "choices": [choice], "usage": _usage(content)}
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices, generated = [], []
        for index, prompt in enumerate(prompts):
            text = self._stop(generated_text(prompt, int(body.get("max_tokens", 16))), body)
            generated.append(text)
            logprobs = None
            if body.get("echo"):
                text = prompt + text
                logprobs = echo_logprobs(text) if body.get("logprobs") and action != "nologprobs" else None
            choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": "length"}
            if body.get("prompt_logprobs") is not None and action != "nologprobs":
                choice["prompt_logprobs"] = prompt_logprobs(prompt)
            choices.append(choice)
        return {"object": "text_completion", "choices": choices, "usage": _usage("".join(generated))}

    def _stop(self, text: str, body: dict[str, Any]) -> str:
        stops = body.get("stop") or []
        for stop in [stops] if isinstance(stops, str) else stops:
            if self.honor_stop:
                text = text.split(stop)[0]
        return text


def _usage(text: str) -> dict[str, int]:
    count = len(tokenize(text))
    return {"prompt_tokens": 0, "completion_tokens": count, "total_tokens": count}


def _handler_class(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            with server.lock:
                server.requests.append((self.path, body, self.headers.get("Authorization")))
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
                started = time.monotonic()
            try:
                self._serve(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)
            finally:
                with server.lock:
                    server.in_flight -= 1
                    server.spans.append((started, time.monotonic()))

        def _serve(self, body: dict[str, Any]) -> None:
            action = server.next_action()
            time.sleep(server.slow_seconds if action == "slow" else server.delay)
            if action == "drop":
                self.close_connection = True
                return
            if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                action = "401"
            if action in ("429", "500", "503", "401"):
                error = {"error": {"message": f"scripted {action}", "type": "test"}}
                self._send(int(action), json.dumps(error).encode())
            elif action == "malformed":
                self._send(200, b'{"choices": [{"text": "cut off')
            else:
                self._send(200, json.dumps(server.reply(self.path, body, action)).encode())

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == 429 and server.retry_after is not None:
                self.send_header("Retry-After", server.retry_after)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _serve_until_killed() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.0)
    arguments = parser.parse_args()
    with FakeOpenAIServer(delay=arguments.delay) as server:
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    _serve_until_killed()
