"""Installed versions of harness and of the libraries whose code determines a number."""

from __future__ import annotations

import functools
from importlib import metadata

# The name harness is published under on the package index; the import name stays `harness`.
DISTRIBUTION = "harness-lm"


@functools.cache  # every signature asks; a metadata lookup scans the installed distributions
def library_version(distribution: str) -> str:
    """The installed version of `distribution`, or "unknown" where it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def harness_version() -> str:
    return library_version(DISTRIBUTION)  # "unknown" in a source tree that was never installed
