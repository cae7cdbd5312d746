"""
Accounts and player state that survive restarts: SQLite (one host) or
PostgreSQL (a cluster), through ``twisted.enterprise.adbapi``.

:func:`open_store` builds the store a node uses from its settings; see
:mod:`mmo.store.db` for what is stored and how names are claimed.
"""

from __future__ import annotations

from typing import Any

from ..settings import StoreSettings
from .db import DatabaseAccountStore
from .pool import Database, InlinePool, make_pool, parse_db
from .service import PersistenceService
from .sql import POSTGRESQL, SQLITE, VERSION

__all__ = [
    "POSTGRESQL", "SQLITE", "VERSION", "Database", "DatabaseAccountStore", "InlinePool",
    "PersistenceService", "open_store", "parse_db",
]


def open_store(settings: StoreSettings, node_id: str, reactor: Any,
               hasher: Any) -> tuple[DatabaseAccountStore, Database]:
    """The node's store (no I/O yet: the pool connects once the reactor runs)."""
    db = parse_db(settings.db, settings.data_dir)
    if db.dialect is POSTGRESQL:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise SystemExit("mmo: --db postgresql://... needs psycopg2: "
                             "pip install 'mmo[postgres]'") from None
    pool = make_pool(db, reactor)
    store = DatabaseAccountStore(
        pool, db.dialect, node_id, reactor, settings.password_iterations, hasher,
        settings.presence_ttl)
    return store, db
