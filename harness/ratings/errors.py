"""Errors of human evaluation a user can act on; the CLI and the pages show the message as it is."""

from __future__ import annotations

from harness.errors import HarnessError

__all__ = ["ItemNotAssignedError", "RatingsBusyError", "RatingsError", "SignInError"]


class RatingsError(HarnessError):
    """A ratings problem a user can act on; the message is shown as it is."""


class RatingsBusyError(RatingsError):
    """Another process held the database's write lock for longer than the timeout; nothing was written."""


class ItemNotAssignedError(RatingsError):
    """A rating or skip for an item the queue never gave this rater; nothing was written."""


class SignInError(RatingsError):
    """A sign-in token that is malformed, unknown or replaced by a newer invitation."""
