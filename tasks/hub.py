"""Task documents from Hugging Face datasets: a Hub dataset (`dataset_path: allenai/ai2_arc`) or a local
folder laid out like a Hub dataset repository (data files per split, optional README.md `configs:`).

This module owns the one `datasets.load_dataset` call, made exactly as lm-evaluation-harness 0.4.13 makes
it (`ConfigurableTask.download`: `load_dataset(path=..., name=..., **dataset_kwargs)` with
`trust_remote_code` dropped), so the documents and their order are the ones lm-eval sees; a per-process memo
of the loaded splits; the guard that keeps a machine without network from spending minutes in the Hub
client's retries; and turning every failure into one HarnessError line that says how to get the data.

Offline, `datasets` finds a Hub dataset in its own cache (HF_DATASETS_CACHE, by default
~/.cache/huggingface/datasets), in `<namespace>___<snake_case name>/<config>/<version>/<commit>/`, the
Arrow files an earlier online load left there; the Hub client's cache (~/.cache/huggingface/hub) is not
consulted.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

Document = dict[str, Any]

# A reachable Hub answers in well under a second; without network, the Hub client would retry for
# 20 seconds (name lookup fails) to minutes (packets dropped) before falling back to the cache.
HUB_PROBE_TIMEOUT_S = 5.0

# Keyword arguments lm-eval 0.4.13 drops before calling datasets >= 4, which no longer accepts them.
DROPPED_KWARGS = ("trust_remote_code",)

# One lock for loads and the probe memo: loads are rare and slow anyway, and the offline switch
# (_datasets_offline) changes process-wide settings that must not interleave.
_lock = threading.RLock()
_loaded_splits: dict[tuple[str, str | None, str], Mapping[str, Any]] = {}
_hub_probe_results: dict[str, bool] = {}


@dataclass(frozen=True)
class _DatasetRequest:
    """A task's dataset as its YAML names it, and what `load_dataset` is called with."""

    dataset_path: str
    dataset_name: str | None
    dataset_kwargs: Mapping[str, Any]
    source: Path | None
    load_path: str  # the Hub id (or builder name) as written, or the resolved local folder
    is_hub: bool

    @property
    def label(self) -> str:
        named = f" ({self.dataset_name})" if self.dataset_name is not None else ""
        return f"dataset '{self.dataset_path}'{named}"

    @property
    def prefix(self) -> str:
        return f"{self.source}: " if self.source is not None else ""

    @property
    def memo_key(self) -> tuple[str, str | None, str]:
        kwargs = json.dumps(dict(self.dataset_kwargs), sort_keys=True, default=repr)
        return (self.load_path, self.dataset_name, kwargs)


def load_hub_split(
    dataset_path: str,
    dataset_name: str | None,
    dataset_kwargs: Mapping[str, Any] | None,
    split: str,
    *,
    source: Path | None = None,
) -> list[Document]:
    """The documents of one split as plain Python values, in the dataset's order.

    `source` is the task YAML the dataset comes from: it prefixes error messages, and a relative
    `dataset_path` naming a folder next to it is read from there.
    """
    request = _dataset_request(dataset_path, dataset_name, dataset_kwargs, source)
    splits = _load_splits(request)
    if split not in splits:
        known = ", ".join(str(name) for name in splits) or "none"
        raise HarnessError(f"{request.prefix}{request.label} has no split '{split}' (splits: {known})")
    return _plain_documents(splits[split])


def hub_splits(
    dataset_path: str,
    dataset_name: str | None,
    dataset_kwargs: Mapping[str, Any] | None,
    *,
    source: Path | None = None,
) -> tuple[str, ...]:
    """The dataset's split names in its own order.

    This loads the dataset (memory-mapped Arrow, no rows are converted), which the task needs next anyway;
    `datasets` has no cheaper way to list the splits of a cached Hub dataset offline.
    """
    request = _dataset_request(dataset_path, dataset_name, dataset_kwargs, source)
    return tuple(str(name) for name in _load_splits(request))


def _dataset_request(
    dataset_path: str,
    dataset_name: str | None,
    dataset_kwargs: Mapping[str, Any] | None,
    source: Path | None,
) -> _DatasetRequest:
    kwargs = {key: value for key, value in (dataset_kwargs or {}).items() if key not in DROPPED_KWARGS}
    folder = _local_folder(dataset_path, source)
    if folder is not None:
        return _DatasetRequest(dataset_path, dataset_name, kwargs, source, str(folder), is_hub=False)
    if _looks_like_a_folder(dataset_path):
        places = [str(source.parent)] if source is not None else []
        places.append(os.getcwd())
        prefix = f"{source}: " if source is not None else ""
        raise HarnessError(
            f"{prefix}dataset folder '{dataset_path}' not found (looked in {' and '.join(places)})"
        )
    is_hub = dataset_path not in _packaged_builder_names()
    return _DatasetRequest(dataset_path, dataset_name, kwargs, source, dataset_path, is_hub=is_hub)


def _local_folder(dataset_path: str, source: Path | None) -> Path | None:
    """The folder a dataset_path names, if any: beside the task YAML first, then as `datasets` itself
    resolves it (relative to the working directory)."""
    if dataset_path.startswith("hf://") or dataset_path in _packaged_builder_names():
        return None  # `datasets` reads these from the Hub or as a builder even if such a folder exists
    path = Path(dataset_path).expanduser()
    candidates = [path]
    if source is not None and not path.is_absolute():
        candidates.insert(0, source.parent / path)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def _looks_like_a_folder(dataset_path: str) -> bool:
    # A Hub id is `name` or `namespace/name`; anything else can only mean a folder on this machine.
    if dataset_path.startswith("hf://"):
        return False
    return dataset_path.startswith(("/", "./", "../", "~", ".\\")) or dataset_path.count("/") > 1


def _packaged_builder_names() -> frozenset[str]:
    """The generic builders (json, csv, parquet, ...) that `datasets` prefers over a Hub id or folder."""
    try:
        from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
    except ImportError:  # a private name: without it, only folder and Hub resolution are affected
        return frozenset({"json", "csv", "parquet", "arrow", "text"})
    return frozenset(_PACKAGED_DATASETS_MODULES)


def _load_splits(request: _DatasetRequest) -> Mapping[str, Any]:
    with _lock:
        if request.memo_key not in _loaded_splits:
            _loaded_splits[request.memo_key] = _load_dataset(request)
        return _loaded_splits[request.memo_key]


def _load_dataset(request: _DatasetRequest) -> Mapping[str, Any]:
    import datasets

    offline_reason = None
    if request.is_hub:
        offline_reason = _offline_reason(datasets.config.HF_HUB_OFFLINE, str(datasets.config.HF_ENDPOINT))
    try:
        with _datasets_offline(offline_reason is not None):
            loaded = datasets.load_dataset(request.load_path, request.dataset_name, **request.dataset_kwargs)
    except Exception as error:  # any failure inside `datasets` becomes one line for the user
        raise HarnessError(_failure_line(request, error, offline_reason)) from None
    if not isinstance(loaded, datasets.DatasetDict | datasets.IterableDatasetDict):
        raise HarnessError(
            f"{request.prefix}{request.label}: dataset_kwargs must not pick a split (`split:`); "
            "name the splits in test_split, validation_split or fewshot_split"
        )
    return loaded


def _offline_reason(offline_mode: bool, endpoint: str) -> str | None:
    """Why the load must stay in the local cache, or None to let `datasets` ask the Hub."""
    if offline_mode:
        return "offline mode is on: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE"
    if not _hub_is_reachable(endpoint):
        return f"no answer from {endpoint} within {HUB_PROBE_TIMEOUT_S:g} s"
    return None


def _hub_is_reachable(endpoint: str) -> bool:
    """Whether a server answers at the Hub endpoint, asked once per process.

    The probe runs in a daemon thread so that even a hanging name lookup cannot hold the caller longer
    than HUB_PROBE_TIMEOUT_S; urllib honours the same proxy variables as the Hub client.
    """
    with _lock:
        if endpoint not in _hub_probe_results:
            answers: list[bool] = []
            probe = threading.Thread(target=_probe_hub, args=(endpoint, answers), daemon=True)
            probe.start()
            probe.join(HUB_PROBE_TIMEOUT_S)
            _hub_probe_results[endpoint] = bool(answers and answers[0])
        return _hub_probe_results[endpoint]


def _probe_hub(endpoint: str, answers: list[bool]) -> None:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(endpoint, method="HEAD"), timeout=HUB_PROBE_TIMEOUT_S
        ):
            answers.append(True)
    except urllib.error.HTTPError:  # an HTTP error status is still an answer
        answers.append(True)
    except urllib.error.URLError as error:
        # A TLS complaint means a server answered; the Hub client may trust certificates urllib does not.
        answers.append(isinstance(error.reason, ssl.SSLError))
    except (OSError, ValueError):
        answers.append(False)


@contextmanager
def _datasets_offline(enabled: bool) -> Iterator[None]:
    """Offline mode for one load: `datasets` then goes straight to its cache, the same fallback it would
    reach by itself after its retries. The settings are module constants read at import time, so they are
    switched in place (under _lock) and restored."""
    if not enabled:
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _plain_documents(split: Any) -> list[Document]:
    # Arrow to Python gives lists, dicts, ints, floats and strs (no numpy): for text columns the rows lm-eval
    # iterates over. Media columns (Image, Audio) stay as stored ({"bytes", "path"}) instead of being
    # decoded into PIL images or arrays. A streamed split already yields plain rows.
    if hasattr(split, "to_list"):
        return [dict(row) for row in split.to_list()]
    return [dict(row) for row in split]


def _failure_line(request: _DatasetRequest, error: Exception, offline_reason: str | None) -> str:
    detail = " ".join(str(error).split()) or type(error).__name__
    where = f"{request.prefix}{request.label}"
    if request.is_hub and (offline_reason is not None or isinstance(error, ConnectionError)):
        return _not_cached_line(request, offline_reason or f"the Hub client failed: {detail}", detail)
    if detail.startswith("BuilderConfig '") and "Available:" in detail:
        known = detail.split("Available:", 1)[1].strip(" []").replace("'", "")
        return f"{where} has no config '{request.dataset_name}' (configs: {known})"
    if detail.startswith("Config name is missing"):
        known = detail.split("available configs:", 1)[-1].split("]", 1)[0].strip(" [").replace("'", "")
        return f"{where} has several configs, so the task must set dataset_name (configs: {known})"
    return f"{where} cannot be loaded: {type(error).__name__}: {detail}"


def _not_cached_line(request: _DatasetRequest, offline_reason: str, detail: str) -> str:
    cache = _datasets_cache_dir(request)
    folder = _cache_folder_name(request.dataset_path.removeprefix("hf://datasets/"))
    cached = _cached_configs(cache / folder)
    where = f"{request.prefix}{request.label}"
    remedy = (
        f"run `{_load_command(request)}` on a machine with network and copy the {folder} folder of its "
        f"datasets cache into {cache}, or point dataset_path at a local folder"
    )
    if not cached:
        return (
            f"{where} is not in the local datasets cache ({cache}) "
            f"and the Hub is not reachable ({offline_reason}): {remedy}"
        )
    if request.dataset_name is None and len(cached) > 1:
        return (
            f"{where}: the local datasets cache holds several configs ({', '.join(cached)}), "
            "so the task must set dataset_name"
        )
    if request.dataset_name is not None and not any(
        config == request.dataset_name or config.startswith(f"{request.dataset_name}-") for config in cached
    ):
        return (
            f"{where}: config '{request.dataset_name}' is not in the local datasets cache ({cache / folder} "
            f"holds {', '.join(cached)}) and the Hub is not reachable ({offline_reason}): {remedy}"
        )
    return f"{where} cannot be read from the local datasets cache ({cache / folder}): {detail}"


def _datasets_cache_dir(request: _DatasetRequest) -> Path:
    import datasets.config

    cache_dir = request.dataset_kwargs.get("cache_dir") or datasets.config.HF_DATASETS_CACHE
    return Path(str(cache_dir)).expanduser()


def _cache_folder_name(repo_id: str) -> str:
    """Where `datasets` keeps a Hub dataset in its cache: `owner___snake_case_name` (builder.py)."""
    from datasets.naming import camelcase_to_snakecase

    *namespace, name = repo_id.split("/")
    return "___".join([*namespace, camelcase_to_snakecase(name)])


def _cached_configs(dataset_folder: Path) -> list[str]:
    """The configs with prepared data in a dataset's cache folder (`<config>/<version>/<commit>/`)."""
    if not dataset_folder.is_dir():
        return []
    return sorted(
        {
            prepared.parent.parent.name
            for prepared in dataset_folder.glob("*/*/*")
            if prepared.is_dir() and (prepared / "dataset_info.json").is_file()
        }
    )


def _load_command(request: _DatasetRequest) -> str:
    arguments = [repr(request.dataset_path)]
    if request.dataset_name is not None:
        arguments.append(repr(request.dataset_name))
    arguments.extend(f"{key}={value!r}" for key, value in request.dataset_kwargs.items())
    return f'python -c "import datasets; datasets.load_dataset({", ".join(arguments)})"'
