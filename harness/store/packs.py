"""Packs: the large part files `harness store compact` makes from many runs' parts, and their manifests.

    root/<table>/pack-<pack_id>.parquet        the rows of many committed runs (runs, scores, samples)
    root/_compaction/manifest-<pack_id>.json   commits a pack: the runs its file holds, per table, and
                                               the packs it replaces
    root/_compaction/lock                      held by the one compaction at work (`harness.store.compaction`)

A pack file means nothing until its manifest exists: the manifest is the commit, written last and
atomically, as a run's `runs` part is. A manifest is *live* unless another manifest replaces it. For
a table, a run's rows are read from the live pack whose manifest lists the run for that table, and the
run's loose `part-<run_id>.parquet` file, if still there, is ignored; so a compaction killed after its
commit but before removing the parts it copied shows every run once. Readers list the loose parts
first and the manifests second: a part listed before a commit is then dropped in favour of the pack,
and a pack committed after the listing simply is not read (its runs' loose parts were listed).
Manifests never change once written, so a process reads each one once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.store.location import list_files, read_bytes, uri

__all__ = [
    "MANIFEST_DIR",
    "Pack",
    "PackSet",
    "manifest_path",
    "pack_id_of",
    "pack_name",
    "read_pack_set",
]

MANIFEST_DIR = "_compaction"  # "_": dataset readers (pyarrow, DuckDB's hive discovery) skip it
PACK_PREFIX = "pack-"
PACK_SUFFIX = ".parquet"
MANIFEST_PREFIX = "manifest-"
MANIFEST_SUFFIX = ".json"
PACKED_TABLES = ("runs", "scores", "samples")


def pack_name(pack_id: str) -> str:
    return f"{PACK_PREFIX}{pack_id}{PACK_SUFFIX}"


def pack_id_of(name: str) -> str | None:
    """The pack id a pack file name carries; None for anything else."""
    if name.startswith(PACK_PREFIX) and name.endswith(PACK_SUFFIX):
        return name[len(PACK_PREFIX) : -len(PACK_SUFFIX)]
    return None


def manifest_path(root: str | Path, pack_id: str) -> str:
    return os.path.join(uri(root), MANIFEST_DIR, f"{MANIFEST_PREFIX}{pack_id}{MANIFEST_SUFFIX}")


@dataclass(frozen=True)
class Pack:
    """One committed pack: per table, the runs whose rows its file holds; the packs it replaced."""

    pack_id: str
    run_ids: Mapping[str, frozenset[str]]
    replaces: tuple[str, ...] = ()
    created_at: str = ""

    @property
    def name(self) -> str:
        return pack_name(self.pack_id)

    def path(self, root: str | Path, table: str) -> str:
        return os.path.join(uri(root), table, self.name)

    def holds(self, table: str) -> frozenset[str]:
        return self.run_ids.get(table, frozenset())

    def to_json(self) -> str:
        content = {
            "pack_id": self.pack_id,
            "created_at": self.created_at,
            "replaces": list(self.replaces),
            "run_ids": {table: sorted(ids) for table, ids in sorted(self.run_ids.items())},
        }
        return json.dumps(content) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Pack:
        content = json.loads(text)
        return cls(
            pack_id=str(content["pack_id"]),
            run_ids={str(t): frozenset(str(i) for i in ids) for t, ids in content["run_ids"].items()},
            replaces=tuple(str(p) for p in content.get("replaces", ())),
            created_at=str(content.get("created_at", "")),
        )


@dataclass(frozen=True)
class PackSet:
    """The committed packs of a store: `live` ones are read; `replaced` ones wait to be removed."""

    live: tuple[Pack, ...] = ()
    replaced: tuple[Pack, ...] = ()
    damaged: tuple[str, ...] = ()  # manifests that could not be read: `name: reason`
    # The pack ids those manifests are named for: their files are committed (and may hold the only
    # copy of their runs' rows), so nothing may treat them as a killed compaction's leftovers.
    damaged_ids: frozenset[str] = frozenset()
    _packed: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def packed(self, table: str) -> frozenset[str]:
        """Runs whose rows of `table` are read from a live pack (their loose parts are ignored)."""
        if table not in self._packed:
            self._packed[table] = frozenset().union(*(pack.holds(table) for pack in self.live))
        return self._packed[table]

    def covering(self, table: str, run_ids: Iterable[str] | None = None) -> list[Pack]:
        """The live packs holding rows of `table` for any of `run_ids` (all of them when None)."""
        if run_ids is None:
            return [pack for pack in self.live if pack.holds(table)]
        wanted = set(run_ids)
        return [pack for pack in self.live if not wanted.isdisjoint(pack.holds(table))]


# Manifests are written once and never changed, so each is parsed once per process.
_PARSED: dict[str, Pack] = {}


def read_pack_set(root: str | Path) -> PackSet:
    """Every manifest under `root/_compaction`, sorted into live and replaced packs."""
    directory = os.path.join(uri(root), MANIFEST_DIR)
    names = sorted(
        name
        for name, _, _ in list_files(directory)
        if name.startswith(MANIFEST_PREFIX) and name.endswith(MANIFEST_SUFFIX)
    )
    packs: list[Pack] = []
    damaged: list[str] = []
    damaged_ids: set[str] = set()
    for name in names:
        path = os.path.join(directory, name)
        pack = _PARSED.get(path)
        if pack is None:
            try:
                pack = Pack.from_json(read_bytes(path).decode("utf-8"))
            except FileNotFoundError:  # removed (replaced) since the listing: its successor is listed
                continue
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
                damaged.append(f"{name}: {type(error).__name__}: {error}")
                damaged_ids.add(name[len(MANIFEST_PREFIX) : -len(MANIFEST_SUFFIX)])
                continue
            _PARSED[path] = pack
        packs.append(pack)
    replaced_ids = {pack_id for pack in packs for pack_id in pack.replaces}
    return PackSet(
        live=tuple(pack for pack in packs if pack.pack_id not in replaced_ids),
        replaced=tuple(pack for pack in packs if pack.pack_id in replaced_ids),
        damaged=tuple(damaged),
        damaged_ids=frozenset(damaged_ids),
    )
