"""Who is calling: the identity an authentication method vouches for, and its partition."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous developer in dev mode) bound to one partition.

    ``subject`` names the caller in the audit log: the JWT ``sub``, the client certificate's subject
    DN, or ``api-key:<role>#<n>``. ``authenticated_by`` lists the methods that vouched for it
    (``jwt``, ``mtls``, ``api-key`` joined by ``+``; ``dev-mode`` without authentication).
    ``roles`` are the TSB role names the caller holds on the path it called.
    """

    subject: str
    partition: str
    authenticated_by: str = "dev-mode"
    roles: frozenset[str] = field(default_factory=frozenset)
