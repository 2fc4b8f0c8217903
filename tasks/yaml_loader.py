"""Reading lm-evaluation-harness task YAML files: `include:` chains and `!function` references.

A task file may `include:` one or more other files (paths relative to the including file); the included
files are merged in order, later ones overriding earlier ones, and the including file's own keys win, as in
lm-eval 0.4.13. `task_list` is never inherited from an included file.

`!function module.attr` names Python beside the YAML (`module.py` in the same folder as the file that holds
the tag), or else an importable module. Loading keeps it as a `FunctionReference`; `resolve_function` imports
it. A task folder with `!function` is code: it is executed with the rights of the user running harness,
exactly as lm-eval would execute it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from harness.errors import HarnessError

__all__ = [
    "FunctionReference",
    "load_task_file",
    "read_yaml_mapping",
    "resolve_function",
    "resolve_functions",
]

# Nested includes deeper than this are almost certainly a mistake (lm-eval's deepest chain is 4).
MAX_INCLUDE_DEPTH = 32


@dataclass(frozen=True)
class FunctionReference:
    """A `!function module.attr` value, not yet imported."""

    qualified_name: str
    base_dir: Path  # the folder of the YAML file that holds the tag

    def __str__(self) -> str:
        return f"!function {self.qualified_name}"


# libyaml's parser when PyYAML has it: several times faster on big task folders, same safe constructors.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TaskYamlLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """The safe loader plus `!function`; every instance knows the folder of the file it reads."""

    base_dir: Path = Path(".")


def _function_constructor(loader: _TaskYamlLoader, node: yaml.Node) -> FunctionReference:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!function takes module.attribute", node.start_mark
        )
    return FunctionReference(str(loader.construct_scalar(node)).strip(), loader.base_dir)


_TaskYamlLoader.add_constructor("!function", _function_constructor)


def _yaml_error(path: Path, error: yaml.YAMLError) -> HarnessError:
    mark = getattr(error, "problem_mark", None)
    line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or "invalid YAML"
    return HarnessError(f"{path}: malformed YAML{line}: {problem}")


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """One YAML file as a mapping (no includes merged), with one-line errors for every way it can fail."""
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"task file not found: {path}") from None
    except IsADirectoryError:
        raise HarnessError(f"{path}: is a folder, not a task file") from None
    except OSError as error:
        raise HarnessError(f"cannot read task file {path}: {error.strerror}") from None
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HarnessError(f"{path}: not UTF-8 text (byte {error.start})") from None
    loader = _TaskYamlLoader(text)
    loader.base_dir = path.parent
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as error:
        raise _yaml_error(path, error) from None
    except RecursionError:
        raise HarnessError(f"{path}: YAML nested too deeply") from None
    finally:
        loader.dispose()
    if not isinstance(raw, dict):
        raise HarnessError(f"{path}: a task file must be a YAML mapping")
    return raw


def load_task_file(path: Path) -> dict[str, Any]:
    """The file's keys with its includes merged in (lm-eval's order and precedence)."""
    return _load(path.expanduser().resolve(), ())


def _load(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain[chain.index(path) :], path))
        raise HarnessError(f"{chain[-1]}: include: cycle of includes ({cycle})")
    if len(chain) >= MAX_INCLUDE_DEPTH:
        raise HarnessError(f"{chain[-1]}: include: more than {MAX_INCLUDE_DEPTH} nested includes")
    raw = read_yaml_mapping(path)
    if "include" not in raw:
        return raw
    includes = raw.pop("include")
    names = includes if isinstance(includes, list) else [includes]
    merged: dict[str, Any] = {}
    for name in names:
        if not isinstance(name, str) or not name:
            raise HarnessError(f"{path}: include: expected a file name, got {name!r}")
        included = Path(name).expanduser()
        included = included if included.is_absolute() else path.parent / included
        if not included.is_file():
            raise HarnessError(f"{path}: include: file not found: {name}")
        inherited = _load(included.resolve(), (*chain, path))
        # A task list belongs to the file that declares it (lm-eval does not inherit it either).
        inherited.pop("task_list", None)
        merged.update(inherited)
    merged.update(raw)
    return merged


# -- !function ------------------------------------------------------------------------------------

_MODULES: dict[tuple[Path, int], ModuleType] = {}


def _module_from_file(path: Path) -> ModuleType:
    """Import a task folder's Python file once per content version, under a name unique to its path."""
    stat = path.stat()
    key = (path, stat.st_mtime_ns)
    if key in _MODULES:
        return _MODULES[key]
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"harness_task_code_{digest}.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, so dataclasses and pickling inside the module find it.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    _MODULES[key] = module
    return module


def resolve_function(reference: FunctionReference, source: Path | None, key: str) -> Callable[..., Any]:
    """Import what a `!function` names: `module.py` beside the YAML first, then an importable module."""
    where = f"{source}: {key}" if source is not None else key
    module_path, _, attribute = reference.qualified_name.rpartition(".")
    if not module_path or not attribute:
        raise HarnessError(f"{where}: !function needs module.attribute, not '{reference.qualified_name}'")
    beside = reference.base_dir / (module_path.replace(".", "/") + ".py")
    try:
        module = _module_from_file(beside) if beside.is_file() else importlib.import_module(module_path)
    except ImportError as error:
        raise HarnessError(
            f"{where}: !function {reference.qualified_name}: cannot import ({error})"
        ) from None
    except Exception as error:  # the module's own code failed while importing
        detail = f"{type(error).__name__}: {error}"
        raise HarnessError(
            f"{where}: !function {reference.qualified_name}: import failed ({detail})"
        ) from None
    found = getattr(module, attribute, None)
    if found is None:
        raise HarnessError(f"{where}: !function {reference.qualified_name}: module has no '{attribute}'")
    if not callable(found):
        raise HarnessError(f"{where}: !function {reference.qualified_name} is not callable")
    return found


def resolve_functions(value: Any, source: Path | None, key: str) -> Any:
    """`value` with every `FunctionReference` inside it (lists and mappings too) imported."""
    if isinstance(value, FunctionReference):
        return resolve_function(value, source, key)
    if isinstance(value, list):
        return [resolve_functions(item, source, key) for item in value]
    if isinstance(value, Mapping):
        return {name: resolve_functions(item, source, f"{key}.{name}") for name, item in value.items()}
    return value
