"""Who is calling: the identity an authentication method vouches for, and its partition."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous developer in dev mode) bound to one partition."""

    subject: str
    partition: str
    authenticated_by: str = "dev-mode"
