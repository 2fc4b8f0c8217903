"""An OpenAI-compatible server on 127.0.0.1 backed by a real (tiny) transformers model, for scoring tests.

It answers /v1/completions the way vLLM's OpenAI server does where loglikelihoods are concerned:
- the prompt is tokenised with the model's tokenizer (special tokens added as the tokenizer adds them);
- `prompt_logprobs: K` (vLLM's extra parameter) puts `prompt_logprobs` in each choice: one entry per prompt
  token, `null` for the first, else `{token_id: {logprob, rank, decoded_token}}` holding the prompt token
  itself plus the K most likely tokens;
- `echo: true` with `logprobs: K` returns the prompt (and the generated text) in `text` and the prompt's
  tokens in `logprobs` (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`), the first token's
  logprob and top logprobs `null`;
- `max_tokens` tokens are generated greedily after the prompt; with echo, `max_tokens: 0` is allowed.
`prompt_logprobs=False` makes it a server without vLLM's extra parameter: it answers HTTP 400 naming the
unknown field, as strict OpenAI-compatible servers do; `echo=False` makes it refuse echo likewise.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import torch
import transformers

from tests.adapters.fake_openai_server import LoopbackServer


class TinyModelServer(LoopbackServer):
    """`with TinyModelServer(model_dir) as server:` serves the model on `server.base_url`."""

    def __init__(self, model_dir: Path, *, prompt_logprobs: bool = True, echo: bool = True) -> None:
        self.model_name = str(model_dir)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.supports_prompt_logprobs = prompt_logprobs
        self.supports_echo = echo
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._listen(_handler_class(self))

    # -- the model -------------------------------------------------------------------------------------

    def _decoded_tokens(self, ids: list[int]) -> list[str]:
        """Each token's text as vLLM's incremental detokenizer gives it: a token that ends inside a
        multi-byte character gives "" and the character comes with the token that completes it."""
        tokens, previous = [], ""
        for end in range(1, len(ids) + 1):
            text = str(self.tokenizer.decode(ids[:end], skip_special_tokens=True))
            if text.endswith("\ufffd"):
                tokens.append("")
                continue
            tokens.append(text[len(previous) :])
            previous = text
        return tokens

    def _completion(self, prompt: str, body: dict[str, Any], index: int) -> dict[str, Any]:
        ids = list(self.tokenizer(prompt).input_ids)
        max_tokens = int(body.get("max_tokens", 16))
        with torch.no_grad():
            generated: list[int] = []
            for _ in range(max_tokens):  # greedy, one token at a time: fine for a tiny model
                logits = self.model(torch.tensor([ids + generated])).logits[0, -1]
                generated.append(int(logits.argmax()))
            prompt_logprobs = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].float(), dim=-1)
        decoded = self._decoded_tokens(ids)
        generated_text = str(self.tokenizer.decode(generated, skip_special_tokens=True))
        # Position i's distribution is predicted at i - 1: the first prompt token has none.
        entries: list[dict[int, dict[str, Any]] | None] = [None]
        wanted = body.get("prompt_logprobs")
        if wanted is None and body.get("echo"):
            wanted = body.get("logprobs")  # vLLM turns echo + logprobs into prompt logprobs of that size
        for position in range(1, len(ids)):
            row = prompt_logprobs[position - 1]
            token = ids[position]
            value = float(row[token])
            entry = {token: {"logprob": value, "rank": 1 + int((row > value).sum()), "decoded_token": ""}}
            for rank, other in enumerate(torch.topk(row, int(wanted or 0)).indices.tolist(), start=1):
                entry.setdefault(other, {"logprob": float(row[other]), "rank": rank, "decoded_token": ""})
            for other, logprob in entry.items():
                logprob["decoded_token"] = (
                    decoded[position] if other == token else self.tokenizer.decode([other])
                )
            entries.append(entry)
        choice: dict[str, Any] = {"index": index, "text": generated_text, "logprobs": None}
        if body.get("echo"):
            choice["text"] = prompt + generated_text
            if body.get("logprobs") is not None:
                choice["logprobs"] = _echo_logprobs(ids, decoded, entries)
        if body.get("prompt_logprobs") is not None:
            choice["prompt_logprobs"] = entries
        choice["finish_reason"] = "length"
        return choice

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("model") != self.model_name:
            return 404, _error(f"The model `{body.get('model')}` does not exist.")
        if "prompt_logprobs" in body and not self.supports_prompt_logprobs:
            return 400, _error("Unrecognized request argument supplied: prompt_logprobs")
        if body.get("echo") and not self.supports_echo:
            return 400, _error("Unrecognized request argument supplied: echo")
        if int(body.get("max_tokens", 16)) < (0 if body.get("echo") else 1):
            return 400, _error("max_tokens must be at least 1")
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = [self._completion(prompt, body, index) for index, prompt in enumerate(prompts)]
        return 200, {"object": "text_completion", "model": self.model_name, "choices": choices}


def _echo_logprobs(
    ids: list[int], decoded: list[str], entries: list[dict[int, dict[str, Any]] | None]
) -> dict[str, Any]:
    tokens, values, tops, offsets, position = [], [], [], [], 0
    for token, text, entry in zip(ids, decoded, entries, strict=True):
        tokens.append(text)
        values.append(None if entry is None else entry[token]["logprob"])
        tops.append(
            None if entry is None else {item["decoded_token"]: item["logprob"] for item in entry.values()}
        )
        offsets.append(position)
        position += len(text)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def _error(message: str) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": "BadRequestError", "code": 400}


def _handler_class(server: TinyModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            with server.lock:
                server.bodies.append(body)
                # One forward pass at a time, as one model on one device serves them.
                status, reply = (
                    server.reply(body) if self.path.endswith("/completions") else (404, _error("no route"))
                )
            payload = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
