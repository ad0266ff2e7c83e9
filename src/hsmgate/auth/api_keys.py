"""API keys per role (header ``X-API-KEY``, reference §2).

A presented key is compared with *every* configured key of every role, in constant time and
without stopping at the first match: neither the time of the answer nor its code tells a caller
whether a key exists for another role. Both sides are hashed with SHA-256 first so that
``hmac.compare_digest`` compares equal-length values (it would leak the length otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from hsmgate.auth.roles import Role

#: Longest X-API-KEY header value looked at; longer values are simply wrong keys.
MAX_KEY_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class ApiKeyMatch:
    """The roles a presented key holds, and a name for it that reveals nothing about the key:
    ``api-key:<role>#<position in the configured list, from 1>`` of its first role."""

    roles: frozenset[Role]
    subject: str


class ApiKeyVerifier:
    """Matches ``X-API-KEY`` values against the configured keys of each role."""

    def __init__(self, keys: Mapping[str, tuple[SecretStr, ...]]) -> None:
        """``keys``: the configured keys by role name (``Settings.api_keys``)."""
        self._entries: list[tuple[Role, int, bytes]] = [
            (Role(role), index, _digest(key.get_secret_value()))
            for role, role_keys in keys.items() for index, key in enumerate(role_keys, start=1)
        ]

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def identify(self, presented: str) -> ApiKeyMatch | None:
        """The roles of ``presented``; None when it matches no configured key."""
        digest = _digest(presented[:MAX_KEY_LENGTH + 1])
        roles: set[Role] = set()
        subject = ""
        for role, index, expected in self._entries:  # no early exit: constant work per request
            if hmac.compare_digest(digest, expected):
                roles.add(role)
                subject = subject or f"api-key:{role}#{index}"
        return ApiKeyMatch(frozenset(roles), subject) if roles else None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
