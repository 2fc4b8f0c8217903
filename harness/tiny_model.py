"""Tiny random-weight causal language models for tests and examples, built locally without downloads.

The weights are random, so the model's outputs are meaningless; what matters is that it exercises the
same code paths as a real checkpoint: a fast BPE tokenizer with special tokens and a chat template, a
Llama architecture, safetensors weights and a context window short enough (128 tokens by default) that
rolling-window perplexity needs several windows.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BOS_EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Byte-level BPE needs all 256 byte symbols plus the special tokens before it can learn any merge.
_MIN_VOCAB_SIZE = 256 + 2

# Enough varied English that the BPE trainer can fill a 512-token vocabulary even when the built-in task
# data does not exist yet (a fresh checkout, or while the tasks are being written).
_FALLBACK_TEXT = """\
The quick brown fox jumps over the lazy dog. A language model assigns a probability to every sequence
of tokens, and an evaluation harness measures how well those probabilities match the text people write.
Perplexity is the exponential of the average negative log-likelihood per token; lower is better.

Paris is the capital of France, Berlin is the capital of Germany, and Madrid is the capital of Spain.
Water boils at one hundred degrees Celsius at sea level and freezes at zero degrees. The Earth orbits
the Sun once a year, while the Moon orbits the Earth roughly once a month.

Question: What is the largest planet in the solar system?
Answer: Jupiter is the largest planet in the solar system.
Question: How many days are there in a week?
Answer: There are seven days in a week: Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday.

Once upon a time, in a small village near the mountains, there lived an old baker who woke before dawn
every morning. She kneaded the dough, lit the oven and watched the bread rise while the village slept.
Children would gather at her window on their way to school, hoping for a warm roll and a kind word.
One winter the snow fell so heavily that the road to the city was closed for weeks, and the baker shared
her flour with every family until the spring thaw opened the road again.

Reading comprehension tests ask a reader to answer questions about a passage. Multiple-choice questions
offer several options, and the model is scored by comparing the likelihood of each option. Generation
tasks instead let the model write an answer, which is then compared with a reference by exact match or
by a softer metric such as token-level F1. Fairness checks compare results across groups of prompts.

Numbers and symbols matter too: 0 1 2 3 4 5 6 7 8 9 10 100 1000, 3.14159, 2 + 2 = 4, 50% of 200 is 100,
(a, b, c), [x, y, z], {"key": "value"}, e-mail: someone@example.com, https://example.org/path?q=1.
Café, naïve, résumé, Straße, smørrebrød, 東京, 北京, Москва, Αθήνα, and an emoji or two: 🙂 🌍.
"""


def _builtin_data_dir() -> Path | None:
    # Found without importing `harness.tasks`, so that a broken task module can never stop a test model
    # from being built.
    spec = importlib.util.find_spec("harness.tasks")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "builtin" / "data"
        if candidate.is_dir():
            return candidate
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _training_texts(data_dir: Path | None) -> list[str]:
    texts = [paragraph for paragraph in _FALLBACK_TEXT.split("\n\n") if paragraph.strip()]
    if data_dir is None:
        return texts
    # Sorted so that the same files always give the same tokenizer.
    for path in sorted(data_dir.glob("*.jsonl")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # Data files may be half-written while this runs; a tokenizer for a random model does
                # not need every line.
                continue
            texts.extend(text for text in _strings(record) if text.strip())
    return texts


def _train_tokenizer(texts: list[str], vocab_size: int, model_max_length: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_EOS_TOKEN, PAD_TOKEN],
        # Every byte gets a token, so any Unicode text round-trips even if the corpus never showed it.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_EOS_TOKEN,
        eos_token=BOS_EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    directory: Path,
    *,
    seed: int = 0,
    vocab_size: int = 512,
    max_position_embeddings: int = 128,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Build a random-weight Llama model and its tokenizer in `directory` and return `directory`.

    The same seed and the same built-in task data give byte-identical weights and tokenizer.
    """
    if vocab_size < _MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least {_MIN_VOCAB_SIZE} for a byte-level tokenizer")
    if hidden_size % 16:
        raise ValueError("hidden_size must be a multiple of 16 (the attention head size)")

    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = _train_tokenizer(
        _training_texts(_builtin_data_dir()), vocab_size, model_max_length=max_position_embeddings
    )
    num_heads = hidden_size // 16
    config = LlamaConfig(
        # The trainer stops early when the corpus has too few distinct pairs; sizing the embedding to
        # the tokenizer keeps every id the model can emit decodable.
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        # Fewer key/value heads than query heads, as in most current checkpoints (grouped-query attention).
        num_key_value_heads=num_heads // 2 if num_heads % 2 == 0 else num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    # A private RNG stream: building a test model must not change the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).float()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
