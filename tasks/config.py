"""Task configuration: the common subset of lm-evaluation-harness's task YAML, plus a few keys of our own.

Unknown keys are an error naming the key (and the closest known key), never silently ignored, so a
typo such as `num_fewshots` cannot quietly change what is measured.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from harness.errors import HarnessError

OutputType = Literal["loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until"]
OUTPUT_TYPES: tuple[OutputType, ...] = (
    "loglikelihood",
    "multiple_choice",
    "loglikelihood_rolling",
    "generate_until",
)

# Keys shared with lm-evaluation-harness, then our own (group_field, apply_chat_template).
LM_EVAL_KEYS = frozenset(
    {
        "task",
        "tag",
        "dataset_path",
        "dataset_name",
        "dataset_kwargs",
        "training_split",
        "validation_split",
        "test_split",
        "fewshot_split",
        "num_fewshot",
        "doc_to_text",
        "doc_to_target",
        "doc_to_choice",
        "description",
        "target_delimiter",
        "fewshot_delimiter",
        "output_type",
        "generation_kwargs",
        "metric_list",
        "metadata",
    }
)
HARNESS_KEYS = frozenset({"group_field", "apply_chat_template"})
KNOWN_KEYS = LM_EVAL_KEYS | HARNESS_KEYS
METRIC_ENTRY_KEYS_IGNORED = frozenset({"aggregation", "higher_is_better"})
GENERATION_KEYS = frozenset(
    {"until", "max_gen_toks", "max_new_tokens", "do_sample", "temperature", "top_p", "seed"}
)

Template = str | int | list[Any] | dict[str, Any]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskConfig:
    task: str
    output_type: OutputType
    dataset_path: str
    data_files: Mapping[str, tuple[Path, ...]]
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
    group_field: str | None = None
    apply_chat_template: bool = False
    source: Path | None = None

    @property
    def eval_split(self) -> str:
        split = self.test_split or self.validation_split
        if split is None:
            raise HarnessError(f"task '{self.task}' names neither test_split nor validation_split")
        return split

    @property
    def fewshot_source_split(self) -> str | None:
        return self.fewshot_split or self.training_split or self.validation_split


def _closest(key: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _where(source: Path | None) -> str:
    return f"{source}: " if source else ""


def _resolve_data_file(name: str, source: Path | None) -> Path:
    """Relative data paths resolve against the YAML's folder first, then the working directory."""
    path = Path(name).expanduser()
    if not path.is_absolute() and source is not None and (source.parent / path).exists():
        return (source.parent / path).resolve()
    return path.resolve()


def _data_files(
    raw: Mapping[str, Any], dataset_path: str, source: Path | None
) -> dict[str, tuple[Path, ...]]:
    kwargs = raw.get("dataset_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise HarnessError(f"{_where(source)}dataset_kwargs must be a mapping")
    unknown = set(kwargs) - {"data_files", "data_dir"}
    if unknown:
        raise HarnessError(f"{_where(source)}unsupported dataset_kwargs key '{sorted(unknown)[0]}'")
    files = kwargs.get("data_files")
    if files is None:
        # dataset_path may itself be a local directory of `<split>.<ext>` files, or one file.
        local = _resolve_data_file(dataset_path, source)
        if local.is_dir():
            found: dict[str, tuple[Path, ...]] = {}
            for candidate in sorted(local.iterdir()):
                if candidate.suffix in {".json", ".jsonl", ".csv", ".parquet"}:
                    found.setdefault(candidate.stem, ())
                    found[candidate.stem] += (candidate,)
            return found
        if local.is_file():
            return {"train": (local,)}
        raise HarnessError(f"{_where(source)}dataset_path '{dataset_path}' is not a local file or folder")
    # The same shapes as datasets.load_dataset(data_files=...): a string or list means split "train".
    if isinstance(files, str | list):
        files = {"train": files}
    if not isinstance(files, Mapping):
        raise HarnessError(f"{_where(source)}dataset_kwargs.data_files must be a path, list or mapping")
    resolved: dict[str, tuple[Path, ...]] = {}
    for split, names in files.items():
        names_list = [names] if isinstance(names, str) else list(names)
        resolved[str(split)] = tuple(_resolve_data_file(str(name), source) for name in names_list)
    return resolved


def _metric_specs(raw: Any, source: Path | None) -> tuple[MetricSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise HarnessError(f"{_where(source)}metric_list must be a list")
    specs = []
    for entry in raw:
        if isinstance(entry, str):
            specs.append(MetricSpec(entry))
            continue
        if not isinstance(entry, Mapping) or "metric" not in entry:
            raise HarnessError(f"{_where(source)}each metric_list entry needs a 'metric' key")
        settings = {k: v for k, v in entry.items() if k != "metric" and k not in METRIC_ENTRY_KEYS_IGNORED}
        specs.append(MetricSpec(str(entry["metric"]), settings))
    return tuple(specs)


def _generation_kwargs(raw: Any, fewshot_delimiter: str, source: Path | None) -> dict[str, Any]:
    kwargs = dict(raw or {})
    for key in kwargs:
        if key not in GENERATION_KEYS:
            raise HarnessError(
                f"{_where(source)}unknown generation_kwargs key '{key}'{_closest(key, GENERATION_KEYS)}"
            )
    # As lm-eval does: without `until`, generation stops at the few-shot delimiter.
    kwargs.setdefault("until", [fewshot_delimiter])
    if isinstance(kwargs["until"], str):
        kwargs["until"] = [kwargs["until"]]
    return kwargs


def config_from_mapping(raw: Mapping[str, Any], source: Path | None = None) -> TaskConfig:
    for key in raw:
        if key not in KNOWN_KEYS:
            raise HarnessError(f"{_where(source)}unknown task key '{key}'{_closest(str(key), KNOWN_KEYS)}")
    for required in ("task", "dataset_path"):
        if required not in raw:
            raise HarnessError(f"{_where(source)}task definition needs '{required}'")
    output_type = raw.get("output_type", "generate_until")
    if output_type not in OUTPUT_TYPES:
        raise HarnessError(
            f"{_where(source)}output_type '{output_type}' is not one of {', '.join(OUTPUT_TYPES)}"
        )
    if raw.get("dataset_name") is not None:
        raise HarnessError(f"{_where(source)}dataset_name is not supported for local data")
    num_fewshot = raw.get("num_fewshot") or 0
    if not isinstance(num_fewshot, int) or num_fewshot < 0:
        raise HarnessError(f"{_where(source)}num_fewshot must be a non-negative integer")
    fewshot_delimiter = str(raw.get("fewshot_delimiter", "\n\n"))
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise HarnessError(f"{_where(source)}metadata must be a mapping")
    dataset_path = str(raw["dataset_path"])
    return TaskConfig(
        task=str(raw["task"]),
        output_type=cast(OutputType, output_type),
        dataset_path=dataset_path,
        data_files=_data_files(raw, dataset_path, source),
        test_split=raw.get("test_split"),
        validation_split=raw.get("validation_split"),
        training_split=raw.get("training_split"),
        fewshot_split=raw.get("fewshot_split"),
        num_fewshot=num_fewshot,
        doc_to_text=raw.get("doc_to_text", ""),
        doc_to_target=raw.get("doc_to_target", ""),
        doc_to_choice=raw.get("doc_to_choice"),
        description=str(raw.get("description") or ""),
        target_delimiter=str(raw.get("target_delimiter", " ")),
        fewshot_delimiter=fewshot_delimiter,
        generation_kwargs=(
            _generation_kwargs(raw.get("generation_kwargs"), fewshot_delimiter, source)
            if output_type == "generate_until"
            else {}
        ),
        metric_list=_metric_specs(raw.get("metric_list"), source),
        version=str(metadata.get("version", "0")),
        group_field=raw.get("group_field"),
        apply_chat_template=bool(raw.get("apply_chat_template", False)),
        source=source,
    )


def load_task_yaml(path: Path) -> TaskConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HarnessError(f"task file not found: {path}") from None
    except OSError as error:
        raise HarnessError(f"cannot read task file {path}: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise HarnessError(f"{path}: malformed YAML{line}: {problem}") from None
    if not isinstance(raw, Mapping):
        raise HarnessError(f"{path}: a task file must be a YAML mapping")
    return config_from_mapping(raw, source=path.resolve())
