from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding

import harness.tiny_model as tiny_model
from harness.tiny_model import BOS_EOS_TOKEN, PAD_TOKEN, build_tiny_model


def test_reloads_with_auto_classes(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    assert model.dtype == torch.float32
    assert model.config.max_position_embeddings == 128
    assert model.config.vocab_size == len(tokenizer) == 512
    assert tokenizer.model_max_length == 128
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        BOS_EOS_TOKEN,
        BOS_EOS_TOKEN,
        PAD_TOKEN,
    )
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id

    inputs = tokenizer(
        ["a short one", "and a somewhat longer second line"], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (*inputs["input_ids"].shape, 512)
    assert torch.isfinite(logits).all()


def test_long_text_needs_several_windows(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "The baker shared her flour with every family until the spring thaw. " * 20
    assert len(tokenizer(text)["input_ids"]) > 3 * 128


def test_same_seed_gives_identical_model(tmp_path: Path) -> None:
    first = build_tiny_model(tmp_path / "a", seed=3)
    second = build_tiny_model(tmp_path / "b", seed=3)
    other = build_tiny_model(tmp_path / "c", seed=4)

    weights_first = load_file(first / "model.safetensors")
    weights_second = load_file(second / "model.safetensors")
    weights_other = load_file(other / "model.safetensors")
    assert weights_first.keys() == weights_second.keys()
    assert all(torch.equal(weights_first[name], weights_second[name]) for name in weights_first)
    assert any(not torch.equal(weights_first[name], weights_other[name]) for name in weights_first)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()


def test_does_not_disturb_global_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model(tmp_path / "model")
    assert torch.equal(torch.rand(3), expected)


def test_options_shape_the_model(tmp_path: Path) -> None:
    directory = build_tiny_model(
        tmp_path / "model", vocab_size=300, max_position_embeddings=64, hidden_size=32, num_layers=1
    )
    config = json.loads((directory / "config.json").read_text())
    assert config["max_position_embeddings"] == 64
    assert config["hidden_size"] == 32
    assert config["num_hidden_layers"] == 1
    assert config["vocab_size"] == len(AutoTokenizer.from_pretrained(directory)) == 300


def test_rejects_a_vocabulary_smaller_than_the_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        build_tiny_model(tmp_path / "model", vocab_size=200)


def test_chat_template(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    assert isinstance(encoded, BatchEncoding)
    assert tokenizer.decode(encoded["input_ids"]) == prompt


def test_generates_from_a_chat_prompt(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert isinstance(inputs, BatchEncoding)
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] <= inputs["input_ids"].shape[1] + 5


@pytest.mark.parametrize(
    "text",
    [
        "Héllo wörld — naïve café, Straße",
        "東京 and 北京, Москва, Αθήνα 🙂🌍 \u200b zero-width",
        "  leading spaces\ttabs\nnew lines\r\n and trailing  ",
        "",
    ],
)
def test_encoding_round_trips_unicode(tiny_model_dir: Path, text: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert all(0 <= token < len(tokenizer) for token in ids)


def test_special_tokens_are_single_tokens(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer(f"end{BOS_EOS_TOKEN}{PAD_TOKEN}")["input_ids"]
    assert ids[-2:] == [tokenizer.eos_token_id, tokenizer.pad_token_id]


def test_learns_from_builtin_task_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rare = "zqxjvkwp"
    records = [{"question": f"{rare} {rare}", "choices": [rare, "x"], "label": 0}] * 50
    lines = [json.dumps(record) for record in records] + ['{"half-written": ']
    (data_dir / "made_up.jsonl").write_text("\n".join(lines), encoding="utf-8")

    monkeypatch.setattr(tiny_model, "_builtin_data_dir", lambda: data_dir)
    with_data = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "with"))
    monkeypatch.setattr(tiny_model, "_builtin_data_dir", lambda: None)
    without_data = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "without"))

    assert len(with_data(f" {rare}")["input_ids"]) < len(without_data(f" {rare}")["input_ids"])


def test_builds_quickly(tmp_path: Path) -> None:
    build_tiny_model(tmp_path / "warm-up")  # imports and first-call setup are not the builder's cost
    started = time.perf_counter()
    build_tiny_model(tmp_path / "model")
    assert time.perf_counter() - started < 5
