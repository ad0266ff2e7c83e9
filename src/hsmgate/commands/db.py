"""``hsmgate db migrate | grants``: the schema, and least privilege for the serving role on PostgreSQL.

The migration role owns the schema (``hsmgate db migrate`` with its URL); the serving role — the
one in hsmgate serve's HSMGATE_DATABASE_URL, whose starts then find the schema current and change
nothing — gets only what ``store/grants.py`` lists: on the audit tables SELECT and INSERT. Without
``--apply`` the statements are printed (SQL, one per line); with it they are run, in one
transaction, as the role of ``--database-url`` (the owner), after checking that the serving role
exists and can be restricted at all: not a superuser, not the tables' owner, not a member of it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hsmgate.commands.common import fail

app = typer.Typer(help="The state database: schema migration, least-privilege grants (PostgreSQL).",
                  no_args_is_help=True)


@app.command("migrate")
def migrate(
    database_url: Annotated[str | None, typer.Option(help="URL of the database, as the role that is to own the "
                                                          "tables [HSMGATE_DATABASE_URL, else the SQLite file in "
                                                          "the data directory]")] = None,
) -> None:
    """Bring the schema to the latest revision (what every start does first)."""
    from sqlalchemy.exc import SQLAlchemyError

    from hsmgate.commands.common import load_settings
    from hsmgate.store.database import Database

    url = database_url or load_settings().resolved_database_url
    db = Database(url)
    try:
        db.migrate()
    except SQLAlchemyError as exc:
        fail(f"cannot migrate: {str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0]}")
    finally:
        db.dispose()
    print("schema at the latest revision")


@app.command("grants")
def grants(
    role: Annotated[str, typer.Option(help="The serving role: the user of hsmgate serve's HSMGATE_DATABASE_URL")],
    apply: Annotated[bool, typer.Option("--apply", help="Run the statements (as the tables' owner) "
                                                        "instead of printing them")] = False,
    database_url: Annotated[str | None, typer.Option(help="With --apply: the PostgreSQL URL of the migration role, "
                                                          "the tables' owner [HSMGATE_DATABASE_URL]")] = None,
    schema: Annotated[str, typer.Option(help="Schema of hsmgate's tables")] = "public",
) -> None:
    """Print (or --apply) the REVOKE / GRANT statements that restrict the serving role."""
    from hsmgate.store.grants import grant_statements

    try:
        statements = grant_statements(role, schema)
    except ValueError as exc:
        fail(str(exc))
    if not apply:
        for statement in statements:
            print(statement + ";")
        return
    url = database_url or _configured_url()
    if not url or not url.startswith("postgresql"):
        fail("hsmgate db grants --apply needs a PostgreSQL --database-url (of the tables' owner)")
    _apply(url, role, schema, statements)
    print(f"role {role}: {len(statements)} statements applied on schema {schema}")


def _configured_url() -> str | None:
    from hsmgate.commands.common import load_settings

    return load_settings().database_url


def _apply(url: str, role: str, schema: str, statements: list[str]) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from hsmgate.store.grants import APPEND_ONLY_TABLES

    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            found = connection.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"),
                                       {"role": role}).one_or_none()
            if found is None:
                fail(f"role {role} does not exist (CREATE ROLE {role} LOGIN … first)")
            if found.rolsuper:
                fail(f"role {role} is a superuser: no grant restricts it")
            owner = connection.scalar(text("SELECT tableowner FROM pg_tables WHERE schemaname = :schema "
                                           "AND tablename = :table"), {"schema": schema, "table": APPEND_ONLY_TABLES[0]})
            if owner is None:
                fail(f"no hsmgate tables in schema {schema}: migrate first, as the role that is to own them")
            if owner == role:
                fail(f"role {role} owns the tables: migrate as another role, the owner, and serve as {role}")
            if connection.scalar(text("SELECT pg_has_role(:role, :owner, 'MEMBER')"), {"role": role, "owner": owner}):
                fail(f"role {role} is a member of the tables' owner {owner}: it could act as the owner")
            for statement in statements:
                connection.execute(text(statement))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"cannot apply the grants: {reason}")
    finally:
        engine.dispose()
