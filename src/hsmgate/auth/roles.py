"""The TSB roles and the path patterns each may call (reference §2, verbatim), as data.

Patterns are Spring ``AntPathMatcher`` patterns: ``**`` as a whole segment matches any number of
segments (including none), ``*`` or ``**`` inside a segment matches any characters of that segment.
They are matched against the *route template* FastAPI matched (``/v1/key/{keyName}``), so the role
decision is made on exactly the code that will run, never on a differently normalised URL.

Deny by default: a route outside :data:`OPEN_PATHS` that no pattern covers can be called by nobody
(``tests/auth/test_roles.py`` checks that every route of the app is covered).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from functools import lru_cache


class Role(enum.StrEnum):
    """A TSB role. The value is the name used in JWT ``roles`` claims and in the mTLS mapping; the
    TSB's configuration key is the value plus ``Token`` (``keyManagementToken``)."""

    KEY_MANAGEMENT = "keyManagement"
    KEY_OPERATION = "keyOperation"
    APPROVER = "approver"
    SERVICE = "service"
    APPROVER_KEY_MANAGEMENT = "approverKeyManagement"


#: Reference §2, "API-key roles and the path patterns they protect" (from DOCS authentication.md).
ROLE_PATHS: Mapping[Role, tuple[str, ...]] = {
    Role.KEY_MANAGEMENT: (
        "/v1/key", "/v1/key/**", "/v1/key/**/attributes", "/v1/importedKey", "/v1/derivedKey", "/v1/dataObject",
        "/v1/dataObject/**", "/v1/attestation/**", "/v1/modify", "/v1/synchronousModify",
    ),
    Role.KEY_OPERATION: (
        "/v1/certificate/**", "/v1/synchronousUnwrap", "/v1/synchronousUnblock", "/v1/synchronousSign",
        "/v1/synchronousFileDecrypt", "/v1/synchronousDecrypt", "/v1/synchronousBlock", "/v1/synchronousHmac",
        "/v1/fileEncrypt", "/v1/wrap", "/v1/verify", "/v1/encrypt", "/v1/createRfcTimestamp",
        "/v1/generateRandom/**", "/v1/unwrap", "/v1/unblock", "/v1/sign", "/v1/decrypt", "/v1/block",
        "/v1/request/**", "/v1/filteredRequests",
    ),
    Role.APPROVER: ("/v1/filtered**ApprovalTask", "/v1/approval", "/v1/task", "/v1/approver/onboard"),
    Role.SERVICE: ("/v1/versionInfo", "/v1/licenseInfo", "/v1/keystore/statistics", "/v1/hsm/log", "/v1/hsm/log/**"),
    Role.APPROVER_KEY_MANAGEMENT: ("/v1/approverManagement/**",),
}

#: Reference §2 CONFLICT: official clients call these paths with another role's key (the Go client
#: sends the *service* key to generateRandom, the Keycloak provider the *key-management* key to
#: certificate endpoints). Accepted only with ``HSMGATE_LENIENT_ROLES=true``.
LENIENT_ROLE_PATHS: Mapping[Role, tuple[str, ...]] = {
    Role.SERVICE: ("/v1/generateRandom/**",),
    Role.KEY_MANAGEMENT: ("/v1/certificate/**",),
}

#: hsmgate endpoints the TSB table does not know, with the role of their single-item counterpart
#: (batch sign/verify like /v1/synchronousSign, ML-KEM decapsulation like /v1/synchronousDecrypt,
#: /v1/verifyHmac like /v1/synchronousHmac); the Prometheus metrics like the other service
#: information (/v1/keystore/statistics); the older name of /v1/approver/onboard (wave-2 §2.3) for
#: approvers too (it also lies under /v1/approverManagement/**).
EXTENSION_ROLE_PATHS: Mapping[Role, tuple[str, ...]] = {
    Role.KEY_OPERATION: ("/v1/synchronousSignBatch", "/v1/verifyBatch", "/v1/encapsulate",
                         "/v1/synchronousDecapsulate", "/v1/decapsulate", "/v1/verifyHmac"),
    Role.SERVICE: ("/metrics",),
    Role.APPROVER: ("/v1/approverManagement/onboard",),
}

#: Routes anyone may call: the load balancers' health check and ``/`` (a redirect to the Swagger
#: UI). The Swagger UI and the OpenAPI document are not API routes and are always open too: they
#: describe the API and hold no data.
OPEN_PATHS: frozenset[str] = frozenset({"/health", "/"})


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """An Ant-style path pattern as an anchored regular expression."""
    regex = ""
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            regex += "(?:/[^/]+)*"
        else:
            regex += "/" + "[^/]*".join(re.escape(part) for part in re.split(r"\*+", segment))
    return re.compile(f"^{regex}/?$")


class RoleTable:
    """Which roles may call a path; built once from the tables above."""

    def __init__(self, *, lenient: bool = False) -> None:
        table: dict[Role, list[re.Pattern[str]]] = {role: [] for role in Role}
        sources: list[Mapping[Role, tuple[str, ...]]] = [ROLE_PATHS, EXTENSION_ROLE_PATHS]
        if lenient:
            sources.append(LENIENT_ROLE_PATHS)
        for source in sources:
            for role, patterns in source.items():
                table[role].extend(compile_pattern(p) for p in patterns)
        self._table = table
        self.lenient = lenient
        self.roles_for = lru_cache(maxsize=1024)(self._roles_for)

    def _roles_for(self, path: str) -> frozenset[Role]:
        """The roles allowed on ``path`` (a route template or a concrete path); empty: nobody."""
        return frozenset(role for role, patterns in self._table.items() if any(p.match(path) for p in patterns))

    @staticmethod
    def is_open(path: str) -> bool:
        return path in OPEN_PATHS
