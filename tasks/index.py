"""The name index of lm-eval task YAML folders: which tasks, groups, tags and Python tasks exist, and where.

This module owns finding the names fast and giving them lm-eval's meaning. lm-evaluation-harness 0.4.13
(lm_eval/tasks/_index.py) parses every YAML file completely and re-parses each included template once
per file that includes it; here each file is read once, only its top-level index keys are picked out
(harness.tasks.yaml_keys), and each included template is read once per process. Names, kinds, paths
and precedence are lm-eval's:

* a `class:` key makes a Python task, else `group:` makes a group (even when `task:` is a string), else
  `task:` makes a task; keys inherited through `include:` count (included files first, later includes
  override earlier ones, the including file's own keys win; paths relative to the including file);
* tags come from tasks only; a tag named like an existing task or group adds nothing;
* within a folder the first file in sorted POSIX path order keeps a name; a later folder replaces an
  earlier folder's entry of the same name (tag members are not merged across folders);
* only `*.yaml` files count, and `__pycache__` / `.ipynb_checkpoints` folders are skipped.

Files that give no name are skipped, as lm-eval skips them, and listed in `TaskFolderIndex.problems`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from harness.tasks.yaml_keys import Keys, UnreadableYaml, read_index_keys

__all__ = [
    "EntryKind",
    "IndexEntry",
    "IndexProblem",
    "TaskFolderIndex",
    "clear_include_cache",
    "index_task_folders",
    "scan_task_folders",
]

log = logging.getLogger(__name__)

EntryKind = Literal["task", "group", "tag", "python_task"]


@dataclass(frozen=True)
class IndexEntry:
    name: str
    kind: EntryKind
    path: Path | None  # the YAML file defining it (None for tags)
    members: tuple[str, ...] = ()  # tags: the tasks carrying the tag (sorted)


@dataclass(frozen=True)
class IndexProblem:
    """A YAML file that gave no name (lm-eval skips the same files), and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class TaskFolderIndex:
    entries: Mapping[str, IndexEntry]
    problems: tuple[IndexProblem, ...]


def index_task_folders(folders: Sequence[Path]) -> dict[str, IndexEntry]:
    """Every task, group, tag and Python task name defined under `folders` (later folders win)."""
    return dict(scan_task_folders(folders).entries)


def scan_task_folders(folders: Sequence[Path], *, full_parse: bool = False) -> TaskFolderIndex:
    """The index of `folders` plus the files that were skipped and why (for listing at debug level)."""
    scan = _Scan(full_parse)
    entries: dict[str, IndexEntry] = {}
    for folder in folders:
        entries.update(scan.index_folder(Path(folder)))
    log.debug("indexed %d names in %s; %d files skipped", len(entries), folders, len(scan.problems))
    return TaskFolderIndex(entries, tuple(scan.problems))


def clear_include_cache() -> None:
    """Forget the included files read so far (they are re-read anyway when their size or mtime changes)."""
    _INCLUDED_KEYS.clear()


_IGNORED_DIRS = frozenset({"__pycache__", ".ipynb_checkpoints"})


class _Unusable(Exception):
    """The file gives no name; the message says why."""


def _file_keys(data: bytes, full_parse: bool) -> Keys:
    try:
        return read_index_keys(data, full_parse=full_parse)
    except UnreadableYaml as error:
        raise _Unusable(str(error)) from None


def _read(path: str) -> bytes:
    # os.read skips building a buffered file object: a third of the cost of reading a small file
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            data = os.read(descriptor, _SMALL_FILE)
            if len(data) == _SMALL_FILE:
                chunks = [data]
                while chunk := os.read(descriptor, _SMALL_FILE):
                    chunks.append(chunk)
                data = b"".join(chunks)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise _Unusable(f"cannot read: {error.strerror or error}") from None
    return data


_SMALL_FILE = 1 << 16


# Each included file's own index keys, once per process: (realpath, full_parse) -> (mtime_ns, size), keys
# or the reason it is unusable. A template shared by hundreds of files is read once.
_INCLUDED_KEYS: dict[tuple[str, bool], tuple[tuple[int, int], Keys | str]] = {}


# ---------------------------------------------------------------------------------------- indexing


class _Scan:
    """One indexing run: include resolution memoised for the run, problems collected."""

    def __init__(self, full_parse: bool) -> None:
        self.full_parse = full_parse
        self.problems: list[IndexProblem] = []
        # realpath -> (keys merged through its includes, every file that merge read) or why it failed
        self._resolved: dict[str, tuple[Keys, frozenset[str]] | str] = {}
        self._resolving: set[str] = set()
        self._targets: dict[tuple[str, str], str] = {}

    def index_folder(self, folder: Path) -> dict[str, IndexEntry]:
        kinds: dict[str, tuple[EntryKind, Path | None]] = {}
        members: dict[str, set[str]] = {}
        for file in _yaml_files(folder):
            try:
                keys = self._top_level_keys(file)
                kind, name = _kind_and_name(keys)
            except _Unusable as problem:
                self.problems.append(IndexProblem(file.as_path, str(problem)))
                continue
            if name in kinds:
                first = kinds[name][1]
                where = f"defined in {first}" if first else "a tag of an earlier task"
                self.problems.append(IndexProblem(file.as_path, f"duplicate name '{name}': already {where}"))
                continue
            kinds[name] = (kind, file.as_path)
            if kind != "group":  # tags are registered from tasks only
                for tag in _tag_names(keys.get("tag"), file.as_path, self.problems):
                    if kinds.setdefault(tag, ("tag", None))[0] == "tag":
                        members.setdefault(tag, set()).add(name)
        return {
            name: IndexEntry(name, kind, where, tuple(sorted(members.get(name, ()))) if kind == "tag" else ())
            for name, (kind, where) in kinds.items()
        }

    def _top_level_keys(self, file: _YamlFile) -> Keys:
        keys = _file_keys(_read(file.path), self.full_parse)
        if "include" not in keys:
            return keys
        return self._merge_includes(file.real_path or os.path.realpath(file.path), keys)[0]

    def _merge_includes(self, real: str, own: Keys) -> tuple[Keys, frozenset[str]]:
        """`own` on top of its included files' keys, and every file read for them (`real` included)."""
        if "include" not in own:
            return own, frozenset((real,))
        includes = own["include"]
        merged: Keys = {}
        read = {real}
        for include in includes if isinstance(includes, list) else [includes]:
            if not isinstance(include, str):
                raise _Unusable(f"include: {include!r} is not a path")
            target = self._include_target(os.path.dirname(real), include)
            keys, target_read = self._resolve_included(target)
            if not target_read.isdisjoint(read):
                # lm-eval shares one "seen" set over the whole include tree, so a template reached twice
                # (a diamond, or the same include listed twice) is an "include cycle" there too.
                raise _Unusable(f"include cycle: {sorted(target_read & read)[0]} is included twice")
            read |= target_read
            merged.update(keys)
        merged.update((key, value) for key, value in own.items() if key != "include")
        return merged, frozenset(read)

    def _include_target(self, folder: str, include: str) -> str:
        # realpath walks every component of the path: hundreds of files in a folder share the answer
        target = self._targets.get((folder, include))
        if target is None:
            target = self._targets[(folder, include)] = os.path.realpath(os.path.join(folder, include))
        return target

    def _resolve_included(self, real: str) -> tuple[Keys, frozenset[str]]:
        known = self._resolved.get(real)
        if isinstance(known, str):
            raise _Unusable(known)
        if known is not None:
            return known
        if real in self._resolving:
            raise _Unusable(f"include cycle through {real}")
        self._resolving.add(real)
        try:
            resolved = self._merge_includes(real, self._included_keys(real))
        except _Unusable as problem:
            self._resolved[real] = str(problem)
            raise
        finally:
            self._resolving.discard(real)
        self._resolved[real] = resolved
        return resolved

    def _included_keys(self, real: str) -> Keys:
        try:
            status = os.stat(real)
        except OSError as error:
            raise _Unusable(f"included file {real}: {error.strerror or error}") from None
        stamp = (status.st_mtime_ns, status.st_size)
        cached = _INCLUDED_KEYS.get((real, self.full_parse))
        if cached is None or cached[0] != stamp:
            try:
                keys: Keys | str = _file_keys(_read(real), self.full_parse)
            except _Unusable as problem:
                keys = f"included file {real}: {problem}"
            cached = _INCLUDED_KEYS[(real, self.full_parse)] = (stamp, keys)
        if isinstance(cached[1], str):
            raise _Unusable(cached[1])
        return cached[1]


def _kind_and_name(keys: Keys) -> tuple[EntryKind, str]:
    kind: EntryKind
    if "class" in keys:
        kind, key = "python_task", "task"
    elif "group" in keys:
        kind, key = "group", "group"
    elif "task" in keys:
        kind, key = "task", "task"
    else:
        raise _Unusable("no task:, group: or class: key (a template?)")
    name = keys.get(key)
    if not isinstance(name, str):
        # lm-eval skips unhashable names (a task list without group:) and cannot list other non-strings
        raise _Unusable(f"{key}: {name!r} is not a name" if key in keys else "class: without task:")
    return kind, name


def _tag_names(tags: object, path: Path, problems: list[IndexProblem]) -> list[str]:
    if not tags:
        return []
    listed = tags if isinstance(tags, list) else [tags]
    names = [name for name in listed if isinstance(name, str)]
    if len(names) != len(listed):
        problems.append(IndexProblem(path, f"tag: {tags!r} has entries that are not names"))
    return names


class _YamlFile(NamedTuple):
    relative: str  # to the indexed folder, with "/": the sort key
    path: str
    as_path: Path
    real_path: str | None  # None for a symlink, resolved only when it has includes


def _yaml_files(folder: Path) -> list[_YamlFile]:
    """Each `*.yaml` file under `folder`, as lm-eval's `folder.glob("**/*.yaml")` sorted by POSIX path.

    Hidden files count and symlinked folders are not entered, as with pathlib's glob; a file whose path
    has an ignored folder name anywhere is left out.
    """
    if _IGNORED_DIRS.intersection(folder.parts) or not folder.is_dir():
        return []
    found: list[_YamlFile] = []
    pending = [("", str(folder), folder, os.path.realpath(folder))]
    while pending:
        relative_dir, directory, directory_path, real_dir = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            relative = f"{relative_dir}/{name}" if relative_dir else name
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
                is_link = entry.is_symlink()
            except OSError:
                continue
            if is_folder:
                if name not in _IGNORED_DIRS:
                    pending.append(
                        (relative, entry.path, directory_path / name, os.path.join(real_dir, name))
                    )
            elif name.endswith(".yaml"):
                real_path = None if is_link else os.path.join(real_dir, name)
                found.append(_YamlFile(relative, entry.path, directory_path / name, real_path))
    found.sort()
    return found
