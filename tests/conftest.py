"""Shared fixtures: a tiny random model built once per session, isolated caches and the default model."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# The suite never reaches a model hub (everything is local), so the README's plain test command behaves
# like CI's even on a machine with no network.
for _variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from harness.default_model import CACHE_ENV_VAR, default_model_dir, harness_cache_dir  # noqa: E402
from harness.tiny_model import build_tiny_model  # noqa: E402

# Read once at start-up, before any test points HARNESS_CACHE_DIR at a temporary directory, so that
# the default model always lands in the cache that outlives the test run.
_PERSISTENT_CACHE_DIR = harness_cache_dir()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama model with a 128-token context; treat it as read-only."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def harness_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty harness cache for this test only."""
    cache = tmp_path / "harness-cache"
    cache.mkdir()
    monkeypatch.setenv(CACHE_ENV_VAR, str(cache))
    return cache


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The real default model, converted at most once per machine (about a minute the first time)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV_VAR, str(_PERSISTENT_CACHE_DIR))
        return default_model_dir()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test: a socket bound there but never
    listening holds it, so no server started meanwhile (a background one's late bind) can take it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])
