"""Files a user reads or hands us: written whole or not at all, and YAML read with one-line errors.

`atomic_write` is how every file harness writes for others appears (store parts, the ratings table,
gate reports): a dot-named temp file in the same folder, fsynced, then renamed over the target, so a
reader (DuckDB, a CI step, a dashboard) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from harness.errors import HarnessError

__all__ = ["atomic_write", "atomic_write_text", "load_yaml_file"]


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened for this.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write via `write(file)` to a dot-named temp file next to `target`, fsync, then rename."""
    # The writer's pid in the name lets `harness store check` tell a live writer's file from a dead one's.
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
    # Not tempfile.mkstemp: its 0600 mode would make the finished file private to this user,
    # whereas os.open honours the umask like any ordinary file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_text(target: Path, text: str) -> None:
    """`atomic_write` of UTF-8 text, creating the target's folder first (report files)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda handle: handle.write(text.encode("utf-8")))


def load_yaml_file(path: str | Path, description: str, error: type[HarnessError] = HarnessError) -> Any:
    """The parsed YAML in `path`; an unreadable file or bad YAML raises `error` naming the
    `description` ("gate config", "rubric", ...) and the path, on one line."""
    import yaml  # only the commands that read YAML pay for it

    file = Path(path)
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as problem:
        raise error(f"cannot read {description} {file}: {problem.strerror or problem}") from None
    except UnicodeDecodeError as problem:
        raise error(f"{description} {file} is not UTF-8 text (byte {problem.start})") from None
    except yaml.YAMLError as problem:
        detail = " ".join(str(problem).split()) or type(problem).__name__
        raise error(f"{description} {file} is not valid YAML: {detail}") from None
    except RecursionError:  # PyYAML builds nested collections recursively: `[[[[...]]]]` thousands deep
        raise error(f"{description} {file} is not valid YAML: nested too deeply") from None
