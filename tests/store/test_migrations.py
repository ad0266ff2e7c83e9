"""The Alembic migrations produce exactly the schema the SQLAlchemy models describe."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hsmgate.store.database import Database
from hsmgate.store.models import Base


def test_models_match_the_latest_migration(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.migrate()
    db.migrate()  # idempotent
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_0008_copies_the_soft_tokens_caller_ids_into_key_metadata(tmp_path: Path) -> None:
    """Soft-token keys kept the caller's ``id`` in ``soft_keys.key_id``; after 0008 ``json.id``
    comes from ``key_metadata.key_id``, so the upgrade copies it (keys without one stay null)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    import hsmgate.migrations

    db = Database(f"sqlite:///{tmp_path / 'u.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(hsmgate.migrations.__file__).parent))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0007")
        for label, key_id in (("with-id", b"app-id"), ("without-id", None)):
            connection.execute(text(
                "INSERT INTO soft_keys (partition, label, key_id, key_type, attributes, sealed_material, nonce, "
                "created_at) VALUES ('p', :label, :key_id, 'EC', '{}', x'00', x'00', '2026-01-01')"),
                {"label": label, "key_id": key_id})
            connection.execute(text("INSERT INTO key_metadata (partition, label, created_at) "
                                    "VALUES ('p', :label, '2026-01-01')"), {"label": label})
    db.migrate()
    with db.engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT label, key_id FROM key_metadata")).fetchall())
    assert rows == {"with-id": "app-id", "without-id": None}
