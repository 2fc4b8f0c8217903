"""Where a store's files live: a local folder, or a prefix in object storage (`s3://bucket/prefix`).

Paths in `harness.store` are strings: a local path, or an `s3://bucket/key` URI. Local files are
listed, read and written with `os` as they always were; URIs go through pyarrow's S3FileSystem,
configured as AWS tools are: credentials and region from the environment or `~/.aws` (never stored,
never printed), the endpoint from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (MinIO, Ceph, moto).
An object appears whole when its upload completes, so a part written straight to its final key is
as atomic as a local temp file and rename: a writer killed mid-upload leaves no object at all.
`pathlib.Path` folds `s3://b/p` into `s3:/b/p`; `uri` folds it back, so a store path may pass
through code that wraps it in a Path.

SQLite files (the request cache, the ratings database) cannot live in object storage: for a remote
store they live in `local_directory(root)`, a folder on this machine keyed by bucket and prefix.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import pyarrow.fs as pafs

from harness.errors import HarnessError
from harness.files import atomic_write

__all__ = [
    "S3_SCHEME",
    "FileEntry",
    "dataset_paths",
    "is_dir",
    "is_file",
    "is_remote",
    "list_files",
    "local_directory",
    "make_dirs",
    "read_bytes",
    "remote_error",
    "remove",
    "uri",
    "write_file",
]

S3_SCHEME = "s3://"
# (file name, size in bytes, modification time in ns)
FileEntry = tuple[str, int, int]


def uri(path: str | Path) -> str:
    """The path as a string, with an `s3://` URI that went through `Path` restored."""
    text = os.fspath(path)
    if text.startswith("s3:/") and not text.startswith(S3_SCHEME):
        return S3_SCHEME + text[len("s3:/") :]
    return text


def is_remote(path: str | Path) -> bool:
    return uri(path).startswith(S3_SCHEME)


def _key(path: str | Path) -> str:
    return uri(path)[len(S3_SCHEME) :].rstrip("/")


def local_directory(root: str | Path) -> Path:
    """The local folder for a store's SQLite files: a local store's own folder; for `s3://bucket/prefix`
    `$XDG_CACHE_HOME/harness/s3/bucket/prefix` (`~/.cache/harness/...`), so every process on this
    machine that uses the same remote store finds the same files."""
    if not is_remote(root):
        return Path(root)
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "harness" / "s3" / _key(root).strip("/")


@lru_cache(maxsize=4)
def _s3(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    options: dict[str, object] = {
        # One quick try: a wrong endpoint should be one clear line within seconds, not minutes.
        "connect_timeout": 5,
        "request_timeout": 30,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=2),
    }
    if endpoint:
        scheme, _, address = endpoint.partition("://")
        options["endpoint_override"] = address if address else endpoint
        options["scheme"] = scheme if address else "https"
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


def _filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _s3(endpoint, region)


def remote_error(path: str | Path, error: OSError) -> HarnessError:
    """One line for an object store that refused: no such bucket, wrong credentials, unreachable.

    The text is ours, not the SDK's, so no request signature or key can end up in it."""
    text = str(error)
    bucket = _key(path).split("/", 1)[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text or "not found" in text.lower():
        reason = f"the bucket '{bucket}' does not exist at {endpoint}"
    elif any(
        mark in text
        for mark in ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403")
    ):
        reason = f"access to the bucket '{bucket}' at {endpoint} was denied (check the credentials)"
    elif any(mark in text.lower() for mark in ("curl", "connect", "resolve", "timeout", "timed out")):
        reason = f"cannot reach the object store at {endpoint}"
    else:
        reason = f"the object store at {endpoint} refused the request ({type(error).__name__})"
    return HarnessError(f"results store {uri(path)}: {reason}")


def list_files(directory: str | Path) -> list[FileEntry]:
    """The files directly in `directory` (empty when there is none)."""
    if not is_remote(directory):
        entries: list[FileEntry] = []
        try:
            iterator = os.scandir(directory)
        except OSError:
            return entries
        with iterator:
            for entry in iterator:
                try:
                    stat = entry.stat()
                except OSError:  # removed while listing
                    continue
                entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
        return entries
    selector = pafs.FileSelector(_key(directory), allow_not_found=True)
    try:
        infos = _filesystem().get_file_info(selector)
    except OSError as error:
        raise remote_error(directory, error) from error
    return [
        (info.base_name, int(info.size or 0), int(info.mtime_ns or 0))
        for info in infos
        if info.type == pafs.FileType.File
    ]


def _info(path: str | Path, named: str | Path | None = None) -> pafs.FileInfo:
    try:
        return _filesystem().get_file_info(_key(path))
    except OSError as error:
        raise remote_error(named or path, error) from error


def is_file(path: str | Path) -> bool:
    if not is_remote(path):
        return os.path.isfile(path)
    return bool(_info(path).type == pafs.FileType.File)


def is_dir(path: str | Path) -> bool:
    """Locally, a folder; in object storage, a bucket that exists (a prefix needs no creating)."""
    if not is_remote(path):
        return os.path.isdir(path)
    bucket = _key(path).split("/", 1)[0]
    return bool(_info(S3_SCHEME + bucket, named=path).type == pafs.FileType.Directory)


def read_bytes(path: str | Path) -> bytes:
    if not is_remote(path):
        with open(path, "rb") as handle:
            return handle.read()
    try:
        with _filesystem().open_input_stream(_key(path)) as handle:
            return bytes(handle.read())
    except FileNotFoundError:
        raise
    except OSError as error:
        raise remote_error(path, error) from error


def write_file(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a whole file: locally via a temp file and rename; remotely as one upload, made only once
    `write` has finished, so a failure midway uploads nothing."""
    if not is_remote(path):
        atomic_write(Path(path), write)
        return
    buffer = io.BytesIO()
    write(buffer)
    try:
        with _filesystem().open_output_stream(_key(path)) as out:
            out.write(buffer.getbuffer())
    except OSError as error:
        raise remote_error(path, error) from error


def remove(path: str | Path) -> bool:
    """Remove one file; False when it was already gone."""
    if not is_remote(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True
    try:
        _filesystem().delete_file(_key(path))
    except FileNotFoundError:
        return False
    except OSError as error:
        raise remote_error(path, error) from error
    return True


def make_dirs(path: str | Path) -> None:
    """Create a local folder (and its parents); object storage has none to create."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def dataset_paths(paths: Sequence[str]) -> tuple[pafs.FileSystem | None, list[str]]:
    """The filesystem and paths to hand `pyarrow.dataset` for these files (all local or all remote)."""
    if not paths or not is_remote(paths[0]):
        return None, list(paths)
    return _filesystem(), [_key(path) for path in paths]
