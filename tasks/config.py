"""Task configuration: the common subset of lm-evaluation-harness's task YAML, plus a few keys of our own.

Unknown keys are an error naming the key (and the closest known key), never silently ignored, so a
typo such as `num_fewshots` cannot quietly change what is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from harness.errors import HarnessError
from harness.tasks.config_values import (
    GENERATION_KEYS as GENERATION_KEYS,  # re-exported: registry checks --gen-kwargs against it
)
from harness.tasks.config_values import (
    MAX_REPEATS,
    closest,
    count,
    generation_kwargs,
    where,
)
from harness.tasks.filters import build_filter_pipelines
from harness.tasks.yaml_loader import load_task_file, resolve_functions

OutputType = Literal["loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until"]
OUTPUT_TYPES: tuple[OutputType, ...] = (
    "loglikelihood",
    "multiple_choice",
    "loglikelihood_rolling",
    "generate_until",
)

# Every key of lm-evaluation-harness 0.4.13's task YAML that harness runs.
LM_EVAL_KEYS = frozenset(
    {
        "task",
        "task_alias",
        "tag",
        "dataset_path",
        "dataset_name",
        "dataset_kwargs",
        "training_split",
        "validation_split",
        "test_split",
        "fewshot_split",
        "fewshot_config",
        "num_fewshot",
        "process_docs",
        "doc_to_text",
        "doc_to_target",
        "doc_to_choice",
        "process_results",
        "description",
        "target_delimiter",
        "fewshot_delimiter",
        "gen_prefix",
        "output_type",
        "generation_kwargs",
        "repeats",
        "filter_list",
        "metric_list",
        "metadata",
    }
)
# lm-eval keys that change no request and no number: accepted and ignored. (`group` in a task file is
# lm-eval's old spelling of `tag`; `unsafe_code` only gates code-execution metrics, which we lack.)
INERT_KEYS = frozenset(
    {
        "should_decontaminate",
        "doc_to_decontamination_query",
        "unsafe_code",
        "group",
        "group_alias",
        "task_list",
    }
)
# lm-eval keys whose features harness does not have: refused by name rather than silently ignored.
UNSUPPORTED_KEYS = {
    "use_prompt": "promptsource prompts are not supported",
    "doc_to_image": "image inputs are not supported",
    "doc_to_audio": "audio inputs are not supported",
    "custom_dataset": "custom_dataset is not supported; point dataset_path at the data",
    "class": "Python task classes are not supported; use a YAML task with !function hooks",
}
HARNESS_KEYS = frozenset({"group_field", "apply_chat_template"})
KNOWN_KEYS = LM_EVAL_KEYS | HARNESS_KEYS | INERT_KEYS
METRIC_ENTRY_KEYS = frozenset({"metric", "aggregation", "higher_is_better", "hf_evaluate"})
FEWSHOT_CONFIG_KEYS = frozenset(
    {
        "sampler",
        "split",
        "samples",
        "process_docs",
        "fewshot_indices",
        "doc_to_text",
        "doc_to_choice",
        "doc_to_target",
        "gen_prefix",
        "fewshot_delimiter",
        "target_delimiter",
    }
)
SAMPLERS = ("default", "first_n")
LOCAL_FORMATS = frozenset({"json", "csv", "parquet"})

# A document field name, a Jinja template, a literal, or (from `!function`) a Python callable.
Template = str | int | list[Any] | dict[str, Any] | Callable[..., Any]
DocumentHook = Callable[[Any], Any]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Only for metrics that a task's own process_results computes: how lm-eval aggregates them.
    aggregation: str | Callable[..., Any] | None = None
    higher_is_better: bool | None = None


@dataclass(frozen=True)
class FewshotSettings:
    """How few-shot examples are chosen and written (lm-eval's `fewshot_config`, task keys inherited)."""

    sampler: str = "default"
    split: str | None = None
    samples: tuple[Mapping[str, Any], ...] | None = None
    indices: tuple[int, ...] | None = None
    process_docs: DocumentHook | None = None
    doc_to_text: Template | None = None
    doc_to_choice: Template | None = None
    doc_to_target: Template | None = None
    gen_prefix: str | None = None
    fewshot_delimiter: str | None = None
    target_delimiter: str | None = None


@dataclass(frozen=True)
class TaskConfig:
    task: str
    output_type: OutputType
    dataset_path: str
    # Local data: split -> files. None when dataset_path names a Hugging Face dataset.
    data_files: Mapping[str, tuple[Path, ...]] | None
    test_split: str | None = None
    validation_split: str | None = None
    training_split: str | None = None
    fewshot_split: str | None = None
    num_fewshot: int = 0
    doc_to_text: Template = ""
    doc_to_target: Template = ""
    doc_to_choice: Template | None = None
    description: str = ""
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    generation_kwargs: Mapping[str, Any] = field(default_factory=dict)
    metric_list: tuple[MetricSpec, ...] = ()
    version: str = "0"
    # One document field, or several: fairness rows for each field alone and for their intersections.
    group_field: str | tuple[str, ...] | None = None
    apply_chat_template: bool = False
    source: Path | None = None
    dataset_name: str | None = None
    dataset_kwargs: Mapping[str, Any] = field(default_factory=dict)
    process_docs: DocumentHook | None = None
    process_results: Callable[[Any, Any], Mapping[str, Any]] | None = None
    # Raw `filter_list` entries; harness.tasks.filters builds the pipelines.
    filter_list: tuple[Mapping[str, Any], ...] | None = None
    repeats: int = 1
    fewshot: FewshotSettings = field(default_factory=FewshotSettings)
    gen_prefix: str | None = None
    task_alias: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Set at run time (lm-eval's --system_instruction): text placed before the description.
    system_instruction: str | None = None
    # With a chat template: few-shot examples as separate turns instead of one user message.
    fewshot_as_multiturn: bool = False

    @property
    def eval_split(self) -> str:
        split = self.test_split or self.validation_split
        if split is None:
            raise HarnessError(f"task '{self.task}' names neither test_split nor validation_split")
        return split

    @property
    def fewshot_source_split(self) -> str | None:
        return self.fewshot.split or self.training_split or self.validation_split or self.test_split

    @property
    def uses_hub_dataset(self) -> bool:
        return self.data_files is None


def _resolve_data_file(name: str, source: Path | None) -> Path:
    """Relative data paths resolve against the YAML's folder first, then the working directory."""
    path = Path(name).expanduser()
    if not path.is_absolute() and source is not None and (source.parent / path).exists():
        return (source.parent / path).resolve()
    if not path.is_absolute() and source is not None and not path.exists():
        return (source.parent / path).resolve()  # missing from both: name it where the YAML would have it
    return path.resolve()


def _local_folder_files(folder: Path) -> dict[str, tuple[Path, ...]]:
    found: dict[str, tuple[Path, ...]] = {}
    for candidate in sorted(folder.iterdir()):
        if candidate.suffix in {".json", ".jsonl", ".csv", ".parquet"}:
            found.setdefault(candidate.stem, ())
            found[candidate.stem] += (candidate,)
    return found


def _data_files(
    kwargs: Mapping[str, Any], dataset_path: str, dataset_name: str | None, source: Path | None
) -> dict[str, tuple[Path, ...]] | None:
    """Local data files per split, or None when dataset_path names a Hugging Face dataset."""
    files = kwargs.get("data_files")
    if files is None:
        if dataset_path in LOCAL_FORMATS:
            raise HarnessError(
                f"{where(source)}dataset_path '{dataset_path}' needs dataset_kwargs.data_files"
            )
        local = _resolve_data_file(dataset_path, source)
        # A folder of `<split>.<ext>` files, or one file; anything else is a Hub dataset (or a folder
        # laid out like one), loaded through the `datasets` library.
        if local.is_dir() and dataset_name is None and not kwargs:
            flat = _local_folder_files(local)
            if flat:
                return flat
        if local.is_file():
            return {"train": (local,)}
        return None
    # The same shapes as datasets.load_dataset(data_files=...): a string or list means split "train".
    if isinstance(files, str | list):
        files = {"train": files}
    if not isinstance(files, Mapping):
        raise HarnessError(f"{where(source)}dataset_kwargs.data_files must be a path, list or mapping")
    resolved: dict[str, tuple[Path, ...]] = {}
    for split, names in files.items():
        if not isinstance(names, str | list) or not all(
            isinstance(n, str) for n in ([names] if isinstance(names, str) else names)
        ):
            raise HarnessError(
                f"{where(source)}dataset_kwargs.data_files.{split} must be a path or list of paths"
            )
        names_list = [names] if isinstance(names, str) else list(names)
        resolved[str(split)] = tuple(_resolve_data_file(str(name), source) for name in names_list)
    return resolved


def _metric_specs(raw: Any, source: Path | None) -> tuple[MetricSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise HarnessError(f"{where(source)}metric_list must be a list")
    specs = []
    for entry in raw:
        if isinstance(entry, str):
            specs.append(MetricSpec(entry))
            continue
        if not isinstance(entry, Mapping) or "metric" not in entry:
            raise HarnessError(f"{where(source)}each metric_list entry needs a 'metric' key")
        name = entry["metric"]
        if callable(name):
            raise HarnessError(f"{where(source)}metric_list: a !function metric is not supported")
        aggregation = entry.get("aggregation")
        if aggregation is not None and not isinstance(aggregation, str) and not callable(aggregation):
            raise HarnessError(f"{where(source)}metric_list: {name}: aggregation must be a name or !function")
        higher = entry.get("higher_is_better")
        if higher is not None and not isinstance(higher, bool):
            raise HarnessError(f"{where(source)}metric_list: {name}: higher_is_better must be true or false")
        settings = {k: v for k, v in entry.items() if k not in METRIC_ENTRY_KEYS}
        specs.append(MetricSpec(str(name), settings, aggregation, higher))
    return tuple(specs)


def _optional_str(raw: Mapping[str, Any], key: str, source: Path | None) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise HarnessError(f"{where(source)}{key} must be a string, not {type(value).__name__}")
    return value


def _group_field(raw: Mapping[str, Any], source: Path | None) -> str | tuple[str, ...] | None:
    """`group_field`: a field name, or a non-empty list of distinct names (intersections)."""
    value = raw.get("group_field")
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, list) and value and all(isinstance(name, str) and name for name in value):
        if len(set(value)) != len(value):
            raise HarnessError(f"{where(source)}group_field lists a field twice: {value}")
        return value[0] if len(value) == 1 else tuple(value)
    raise HarnessError(
        f"{where(source)}group_field must be a field name or a list of field names, not {value!r}"
    )


def _text_setting(raw: Mapping[str, Any], key: str, default: str, source: Path | None) -> str:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise HarnessError(f"{where(source)}{key} must be a string, not {type(value).__name__}")
    return value


def _hook(raw: Mapping[str, Any], key: str, source: Path | None) -> Any:
    value = resolve_functions(raw.get(key), source, key)
    if value is not None and not callable(value):
        raise HarnessError(f"{where(source)}{key} must be a !function reference")
    return value


def _fewshot_settings(
    raw: Mapping[str, Any], resolved: Mapping[str, Any], source: Path | None
) -> FewshotSettings:
    config = raw.get("fewshot_config") or {}
    if not isinstance(config, Mapping):
        raise HarnessError(f"{where(source)}fewshot_config must be a mapping")
    for key in config:
        if key not in FEWSHOT_CONFIG_KEYS:
            raise HarnessError(
                f"{where(source)}unknown fewshot_config key '{key}'{closest(str(key), FEWSHOT_CONFIG_KEYS)}"
            )
    sampler = config.get("sampler", "default")
    if sampler not in SAMPLERS:
        raise HarnessError(
            f"{where(source)}fewshot_config.sampler '{sampler}' is not one of {', '.join(SAMPLERS)}"
        )
    config = resolve_functions(dict(config), source, "fewshot_config")
    samples = config.get("samples")
    if callable(samples):
        samples = samples()
    if samples is not None and (
        not isinstance(samples, list) or not all(isinstance(d, Mapping) for d in samples)
    ):
        raise HarnessError(f"{where(source)}fewshot_config.samples must be a list of documents")
    indices = config.get("fewshot_indices")
    if indices is not None and (not isinstance(indices, list) or not all(type(i) is int for i in indices)):
        raise HarnessError(f"{where(source)}fewshot_config.fewshot_indices must be a list of integers")

    def inherited(key: str, task_key: str | None = None) -> Any:
        # fewshot_config's own keys win; otherwise the task's (lm-eval's FewshotConfig.from_dict).
        return config[key] if key in config else resolved.get(task_key or key)

    return FewshotSettings(
        sampler=str(sampler),
        split=inherited("split", "fewshot_split"),
        samples=tuple(samples) if samples is not None else None,
        indices=tuple(indices) if indices is not None else None,
        process_docs=inherited("process_docs"),
        doc_to_text=inherited("doc_to_text"),
        doc_to_choice=inherited("doc_to_choice"),
        doc_to_target=inherited("doc_to_target"),
        gen_prefix=inherited("gen_prefix"),
        fewshot_delimiter=inherited("fewshot_delimiter"),
        target_delimiter=inherited("target_delimiter"),
    )


def _tags(raw: Mapping[str, Any], source: Path | None) -> tuple[str, ...]:
    value = raw.get("tag")
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise HarnessError(f"{where(source)}tag must be a name or a list of names")
    return tuple(names)


def _check_keys(raw: Mapping[str, Any], source: Path | None) -> None:
    for key in raw:
        if key in UNSUPPORTED_KEYS:
            raise HarnessError(f"{where(source)}{key}: {UNSUPPORTED_KEYS[key]}")
        if key not in KNOWN_KEYS:
            raise HarnessError(f"{where(source)}unknown task key '{key}'{closest(str(key), KNOWN_KEYS)}")
    for required in ("task", "dataset_path"):
        if required not in raw:
            raise HarnessError(f"{where(source)}task definition needs '{required}'")
    if not isinstance(raw["task"], str) or not raw["task"].strip():
        raise HarnessError(f"{where(source)}task must be a non-empty name")
    if not isinstance(raw["dataset_path"], str) or not raw["dataset_path"]:
        raise HarnessError(f"{where(source)}dataset_path must be a non-empty string")
    for split_key in ("test_split", "validation_split", "training_split", "fewshot_split", "dataset_name"):
        _optional_str(raw, split_key, source)


def config_from_mapping(raw: Mapping[str, Any], source: Path | None = None) -> TaskConfig:
    """A task from its YAML keys (includes already merged; `!function` values may still be references)."""
    _check_keys(raw, source)
    output_type = raw.get("output_type", "generate_until")
    if output_type not in OUTPUT_TYPES:
        raise HarnessError(
            f"{where(source)}output_type '{output_type}' is not one of {', '.join(OUTPUT_TYPES)}"
        )
    fewshot_delimiter = _text_setting(raw, "fewshot_delimiter", "\n\n", source)
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise HarnessError(f"{where(source)}metadata must be a mapping")
    dataset_kwargs = raw.get("dataset_kwargs") or {}
    if not isinstance(dataset_kwargs, Mapping):
        raise HarnessError(f"{where(source)}dataset_kwargs must be a mapping")
    dataset_path = str(raw["dataset_path"])
    dataset_name = raw.get("dataset_name")
    data_files = _data_files(dataset_kwargs, dataset_path, dataset_name, source)
    if data_files is not None:
        unknown = set(dataset_kwargs) - {"data_files", "data_dir", "trust_remote_code"}
        if unknown:
            raise HarnessError(
                f"{where(source)}unsupported dataset_kwargs key '{sorted(unknown)[0]}' for local data"
            )
        if dataset_name is not None and dataset_path not in LOCAL_FORMATS:
            raise HarnessError(f"{where(source)}dataset_name is not supported for local data files")
    resolved = {key: resolve_functions(raw.get(key), source, key) for key in raw if key in _HOOK_KEYS}
    # Imported once: the few-shot split inherits it too, unless fewshot_config names its own.
    process_docs = _hook(raw, "process_docs", source)
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise HarnessError(f"{where(source)}description must be a string")
    return TaskConfig(
        task=raw["task"],
        output_type=cast(OutputType, output_type),
        dataset_path=dataset_path,
        data_files=data_files,
        test_split=raw.get("test_split"),
        validation_split=raw.get("validation_split"),
        training_split=raw.get("training_split"),
        fewshot_split=raw.get("fewshot_split"),
        num_fewshot=count(raw, "num_fewshot", 0, 0, source),
        doc_to_text=resolved.get("doc_to_text", ""),
        doc_to_target=resolved.get("doc_to_target", ""),
        doc_to_choice=resolved.get("doc_to_choice"),
        description=description,
        target_delimiter=_text_setting(raw, "target_delimiter", " ", source),
        fewshot_delimiter=fewshot_delimiter,
        generation_kwargs=(
            generation_kwargs(raw.get("generation_kwargs"), fewshot_delimiter, source)
            if output_type == "generate_until"
            else {}
        ),
        metric_list=_metric_specs(resolve_functions(raw.get("metric_list"), source, "metric_list"), source),
        version=str(metadata.get("version", "0")),
        group_field=_group_field(raw, source),
        apply_chat_template=bool(raw.get("apply_chat_template", False)),
        source=source,
        dataset_name=dataset_name,
        dataset_kwargs=dict(dataset_kwargs),
        process_docs=process_docs,
        process_results=_hook(raw, "process_results", source),
        filter_list=_filter_entries(raw, source),
        repeats=count(raw, "repeats", 1, 1, source, maximum=MAX_REPEATS),
        fewshot=_fewshot_settings(raw, {**raw, **resolved, "process_docs": process_docs}, source),
        gen_prefix=_optional_str(raw, "gen_prefix", source),
        task_alias=_optional_str(raw, "task_alias", source),
        tags=_tags(raw, source),
        metadata=dict(metadata),
    )


# Keys whose values may be `!function` references to import when the task is built.
_HOOK_KEYS = frozenset({"doc_to_text", "doc_to_target", "doc_to_choice"})


def _filter_entries(raw: Mapping[str, Any], source: Path | None) -> tuple[Mapping[str, Any], ...] | None:
    entries = raw.get("filter_list")
    if entries is None:
        return None
    entries = resolve_functions(entries, source, "filter_list")
    if not isinstance(entries, list):
        raise HarnessError(f"{where(source)}filter_list must be a list")
    # Built here so a bad filter fails when the task is loaded, before any model call.
    build_filter_pipelines(entries, source)
    return tuple(entries)


def load_task_yaml(path: Path) -> TaskConfig:
    """A task from a YAML file, with its includes merged and its `!function` hooks imported."""
    return config_from_mapping(load_task_file(path), source=path.expanduser().resolve())
