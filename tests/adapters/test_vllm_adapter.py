"""The `vllm` adapter: settings and the missing-dependency error everywhere; the engine where vLLM and a
CUDA GPU are present (the tests that need them skip elsewhere, saying which is missing).

On a GPU its numbers are compared with the `hf` adapter's on the tiny test model in float32.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness.adapters import load_adapter
from harness.adapters.vllm_adapter import VLLMAdapter, parse_settings
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    GenerationSettings,
    LoglikelihoodRequest,
    RollingLoglikelihoodRequest,
)

VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None


def _gpu_reason() -> str | None:
    if not VLLM_INSTALLED:
        return "vllm is not installed (pip install 'harness-lm[vllm]' on a CUDA machine)"
    import torch

    return None if torch.cuda.is_available() else "no CUDA GPU is available"


needs_gpu = pytest.mark.skipif(_gpu_reason() is not None, reason=str(_gpu_reason()))


def test_settings_are_checked_before_any_engine_starts() -> None:
    settings = parse_settings(
        "m",
        {
            "tensor_parallel_size": "2",
            "gpu_memory_utilization": "0.5",
            "max_model_len": "512",
            "dtype": "bfloat16",
        },
    )
    assert (settings.tensor_parallel_size, settings.gpu_memory_utilization) == (2, 0.5)
    assert (settings.max_model_len, settings.dtype, settings.enable_prefix_caching) == (512, "bfloat16", True)
    for args, message in [
        ({"gpu_memory_utilization": "1.5"}, "gpu_memory_utilization must be a number between"),
        ({"tensor_parallel_size": "two"}, "tensor_parallel_size must be a number"),
        ({"dtype": "int3"}, "unknown dtype 'int3'"),
        ({"tensor_parallel": "2"}, "unknown --model-args key 'tensor_parallel'"),
    ]:
        with pytest.raises(HarnessError, match=message):
            parse_settings("m", args)


@pytest.mark.skipif(VLLM_INSTALLED, reason="vllm is installed here")
def test_without_vllm_the_error_is_one_line_saying_what_to_install(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from harness.cli import main

    with pytest.raises(HarnessError, match=r"needs vLLM, which is not installed; install it with pip"):
        load_adapter("vllm:some-model")
    assert main(["run", "--model", "vllm:some-model", "--tasks", "harness_facts_qa", "--limit", "2"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "harness-lm[vllm]" in error


def test_fingerprint_follows_weights_and_dtype(tiny_model_dir: Path) -> None:
    def fingerprint(**args: str) -> str:
        return VLLMAdapter(parse_settings(str(tiny_model_dir), args)).fingerprint

    assert fingerprint() == fingerprint(gpu_memory_utilization="0.5", tensor_parallel_size="1")
    assert fingerprint() != fingerprint(dtype="float16")


@needs_gpu
def test_numbers_equal_the_hf_adapter_on_the_tiny_model(tiny_model_dir: Path) -> None:
    served = load_adapter(f"vllm:{tiny_model_dir}", {"dtype": "float32", "gpu_memory_utilization": "0.3"})
    local = load_adapter(f"hf:{tiny_model_dir}", {"batch_size": "4"})
    pairs = [
        LoglikelihoodRequest("The capital of France is", " Paris"),
        LoglikelihoodRequest("Question: what do bakers make?\nAnswer: ", "bread"),
        LoglikelihoodRequest("", "Water boils"),
    ]
    for ours, theirs in zip(served.loglikelihood(pairs), local.loglikelihood(pairs), strict=True):
        assert ours.logprob == pytest.approx(theirs.logprob, abs=1e-3)
        assert (ours.is_greedy, ours.num_tokens) == (theirs.is_greedy, theirs.num_tokens)
    texts = [RollingLoglikelihoodRequest("A language model assigns a probability to every sequence. " * 3)]
    ours_rolling, theirs_rolling = (
        served.loglikelihood_rolling(texts)[0],
        local.loglikelihood_rolling(texts)[0],
    )
    assert ours_rolling.num_tokens == theirs_rolling.num_tokens
    assert ours_rolling.logprob == pytest.approx(theirs_rolling.logprob, rel=1e-3)
    prompts = [
        GenerationRequest("The capital of France is", GenerationSettings(max_tokens=12)),
        GenerationRequest(
            "Question: what is water?\nAnswer:", GenerationSettings(max_tokens=20, stop=("\n",))
        ),
    ]
    assert [r.text for r in served.generate(prompts)] == [r.text for r in local.generate(prompts)]
