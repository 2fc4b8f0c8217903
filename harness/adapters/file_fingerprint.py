"""The fingerprint of a model's files: a hash of the weight, config and tokenizer files' contents, so
a re-saved identical checkpoint keeps its cached answers and results, whatever its path.

Hashing a multi-gigabyte checkpoint takes seconds, so each file's hash is remembered in the harness
cache keyed by path, size, modification time and inode, and a file is read again only when one changes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from harness.default_model import harness_cache_dir


def file_fingerprint(folder: Path, gguf_file: str | None) -> str:
    """Hash of the weight and config files' contents: a re-saved identical checkpoint keeps its results."""
    digest = hashlib.sha256()
    names = [gguf_file] if gguf_file else []
    if not gguf_file:
        names = sorted(
            path.name
            for path in folder.iterdir()
            if path.suffix in {".safetensors", ".bin", ".json", ".model", ".txt", ".jinja"} and path.is_file()
        )
    known = _load_hash_cache()
    changed = False
    for name in names:
        path = (folder / name).resolve()
        status = path.stat()
        key = f"{path}|{status.st_size}|{status.st_mtime_ns}|{status.st_ino}"
        if key not in known:
            file_digest = hashlib.sha256()
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    file_digest.update(chunk)
            known[key] = file_digest.hexdigest()
            changed = True
        digest.update(name.encode())
        digest.update(known[key].encode())
    if changed:
        _save_hash_cache(known)
    return digest.hexdigest()


def _hash_cache_path() -> Path:
    return harness_cache_dir() / "file_hashes.json"


def _load_hash_cache() -> dict[str, str]:
    """File hashes keyed by path, size, mtime and inode: a 0.5 GB checkpoint is hashed once, not per run."""
    try:
        data = json.loads(_hash_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_hash_cache(known: dict[str, str]) -> None:
    path = _hash_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(dict(list(known.items())[-2000:])), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass  # only a speed-up: without it the files are hashed again next time


__all__ = ["file_fingerprint"]
