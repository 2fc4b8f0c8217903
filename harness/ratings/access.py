"""Sign-in tokens for the rating app: what a token looks like, how it is hashed, who it identifies.

`harness ratings invite CAMPAIGN RATER` makes a personal token for one rater of one campaign;
`harness ratings viewer NAME` one for a viewer of the results pages (when the app requires it).
The token is shown once; the ratings database keeps only its SHA-256. A token is 256 random bits,
so a fast hash is enough: a slow password hash protects guessable secrets, and nobody guesses
one of 2**256. Whoever holds the token is that rater: the name is never typed, so nobody can rate
as somebody else. A new invitation for the same rater replaces the old token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from harness.ratings.errors import SignInError

__all__ = [
    "TOKEN_PARAMETER",
    "Identity",
    "Invitation",
    "Role",
    "hash_token",
    "invitation_link",
    "new_token",
]

Role = Literal["rater", "viewer"]
TOKEN_PARAMETER = "token"  # the query parameter of an invitation link
_TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet; accept a little slack, no more.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


@dataclass(frozen=True)
class Identity:
    """Who a valid token belongs to: a rater of one campaign, or a viewer of the results pages."""

    role: Role
    name: str  # the rater id (normalised) or the viewer's name
    campaign_id: str | None  # raters only
    token_hash: str  # kept server-side to check on every page run that the token is still current


@dataclass(frozen=True)
class Invitation:
    """A new token, to hand to its holder once; only `identity.token_hash` is stored."""

    identity: Identity
    token: str

    def link(self, base_url: str, page: str) -> str:
        return invitation_link(base_url, page, self.token)


def new_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256); SignInError when it cannot be a token at all."""
    text = token.strip()
    if not _TOKEN_RE.match(text):
        raise SignInError("that is not a sign-in token; paste the whole token from your invitation")
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def invitation_link(base_url: str, page: str, token: str) -> str:
    """`base_url/page?token=...`, the link a rater opens to be signed in at once."""
    return f"{base_url.rstrip('/')}/{page}?{urlencode({TOKEN_PARAMETER: token})}"
