"""Least privilege on PostgreSQL: a migration role owns the schema, the serving role gets only what
serving needs (``hsmgate db grants``).

Per table, the serving role may:

=======================================  ===========================  ==================================
``audit_log``, ``audit_checkpoints``     SELECT, INSERT               append-only: no UPDATE, DELETE,
                                                                      TRUNCATE; not being the owner, it
                                                                      cannot ``ALTER TABLE … DISABLE
                                                                      TRIGGER`` or drop the triggers
``audit_chain_heads``                    SELECT, INSERT, UPDATE       the appenders lock the head row
                                                                      (``SELECT … FOR UPDATE`` needs
                                                                      UPDATE) and move it
``alembic_version``                      SELECT                       a start checks the schema is at
                                                                      the latest revision
every other table                        SELECT, INSERT, UPDATE,      keys, partitions, SKA requests …
                                         DELETE                       change and go away
=======================================  ===========================  ==================================

and use the schema and its sequences (``nextval`` of the id columns; not ``setval``). Everything
else is revoked first, so applying the statements again after a migration (new tables) converges.
The statements name the tables of the current schema (:data:`hsmgate.store.models.Base`): run
them after every migration.
"""

from __future__ import annotations

from hsmgate.store.models import AuditChainHead, AuditCheckpointRow, AuditRecordRow, Base

#: The audit tables the serving role may only read and append to.
APPEND_ONLY_TABLES = (AuditRecordRow.__tablename__, AuditCheckpointRow.__tablename__)
VERSION_TABLE = "alembic_version"
_APPEND = ("SELECT", "INSERT")
_HEADS = ("SELECT", "INSERT", "UPDATE")
_READ = ("SELECT",)
_WORK = ("SELECT", "INSERT", "UPDATE", "DELETE")
#: PostgreSQL's limit on identifier length (bytes).
MAX_IDENTIFIER_BYTES = 63


def quote_identifier(name: str) -> str:
    """``name`` as a PostgreSQL identifier: double-quoted, inner quotes doubled. Raises ValueError
    for an empty name, a NUL or more than 63 bytes."""
    if not name or "\0" in name or len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"{name!r} is not a PostgreSQL identifier (1–{MAX_IDENTIFIER_BYTES} bytes, no NUL)")
    return '"' + name.replace('"', '""') + '"'


def serving_privileges() -> dict[str, tuple[str, ...]]:
    """Table → the privileges of the serving role (module text), in table order."""
    privileges: dict[str, tuple[str, ...]] = {VERSION_TABLE: _READ}
    for table in sorted(Base.metadata.tables):
        if table in APPEND_ONLY_TABLES:
            privileges[table] = _APPEND
        elif table == AuditChainHead.__tablename__:
            privileges[table] = _HEADS
        else:
            privileges[table] = _WORK
    return dict(sorted(privileges.items()))


def grant_statements(role: str, schema: str = "public") -> list[str]:
    """The REVOKE / GRANT statements that give ``role`` exactly :func:`serving_privileges` on the
    tables of ``schema`` (module text). Raises ValueError for a name that is no identifier."""
    who, where = quote_identifier(role), quote_identifier(schema)
    statements = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {where} FROM {who}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {where} FROM {who}",
        f"REVOKE CREATE ON SCHEMA {where} FROM {who}",
        f"GRANT USAGE ON SCHEMA {where} TO {who}",
    ]
    statements += [f"GRANT {', '.join(privileges)} ON {where}.{quote_identifier(table)} TO {who}"
                   for table, privileges in serving_privileges().items()]
    statements.append(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {where} TO {who}")
    return statements
