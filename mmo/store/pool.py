"""
Connections to the database: the ``--db`` value, the startup connection,
the ``adbapi`` pool the node uses, and :class:`InlinePool` for tests.

The node only ever touches the database through ``pool.runInteraction``:
``adbapi`` runs each interaction in its own thread pool and commits it (or
rolls it back) there, so a slow or locked database never holds the reactor.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from .sql import POSTGRESQL, SQLITE, Dialect

#: The SQLite file's name in the data directory when ``--db`` is not given.
SQLITE_FILE = "mmo.sqlite3"


@dataclass(frozen=True)
class Database:
    """Where the database is: a dialect and what its driver connects to."""

    dialect: Dialect
    target: str
    #: Seconds a statement waits for a lock held by another writer.
    busy_timeout: float = 5.0

    @property
    def display(self) -> str:
        """The location without a password (for logs)."""
        if self.dialect is SQLITE:
            return f"sqlite:{self.target}"
        head, sep, tail = self.target.rpartition("@")
        if not sep:
            return self.target
        scheme, _, userinfo = head.partition("://")
        return f"{scheme}://{userinfo.split(':')[0]}@{tail}"


def parse_db(value: str, data_dir: str) -> Database:
    """
    ``""`` (SQLite in ``data_dir``), ``sqlite:PATH`` or a path, or a
    ``postgresql://`` URL.
    """
    value = value.strip()
    if value.startswith(("postgresql://", "postgres://")):
        return Database(POSTGRESQL, value)
    if not value:
        return Database(SQLITE, os.path.join(data_dir, SQLITE_FILE))
    if value.startswith("sqlite:"):
        value = value[len("sqlite:"):]
        if value.startswith("//"):
            value = value[2:]
    if "://" in value:
        raise ValueError(f"--db {value!r}: use sqlite:PATH or postgresql://...")
    return Database(SQLITE, value)


def setup_connection(db: Database, conn: Any) -> None:
    """Per-connection settings (run on every new connection)."""
    if db.dialect is SQLITE:
        # WAL: readers never wait for the writer, and a commit is one append.
        # synchronous=NORMAL keeps every commit across a crash of the
        # process (kill -9); only a power cut may lose the last ones.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(db.busy_timeout * 1000)}")


def connect(db: Database) -> Any:
    """One blocking connection (startup and tests, never on the reactor)."""
    if db.dialect is SQLITE:
        conn = sqlite3.connect(db.target, timeout=db.busy_timeout, check_same_thread=False)
    else:
        import psycopg2

        conn = psycopg2.connect(db.target, connect_timeout=10)
    setup_connection(db, conn)
    return conn


def make_pool(db: Database, reactor: Any) -> Any:
    """An ``adbapi.ConnectionPool`` for ``db`` on ``reactor``."""
    from twisted.enterprise import adbapi

    def openfun(conn: Any) -> None:
        setup_connection(db, conn)

    if db.dialect is SQLITE:
        # One connection: SQLite has one writer at a time anyway, and a single
        # connection never waits on the node's own locks.
        return adbapi.ConnectionPool(
            "sqlite3", db.target, timeout=db.busy_timeout, check_same_thread=False,
            cp_min=1, cp_max=1, cp_openfun=openfun, cp_reactor=reactor, cp_noisy=False)
    return adbapi.ConnectionPool(
        "psycopg2", db.target, connect_timeout=10, cp_min=1, cp_max=4,
        cp_reconnect=True, cp_openfun=openfun, cp_reactor=reactor, cp_noisy=False)


def run_sync(conn: Any, interaction: Any, *args: Any) -> Any:
    """Run ``interaction(cursor, *args)`` in a transaction, as adbapi does."""
    cursor = conn.cursor()
    try:
        result = interaction(cursor, *args)
        cursor.close()
        conn.commit()
        return result
    except BaseException:
        try:
            conn.rollback()
        finally:
            cursor.close()
        raise


class InlinePool:
    """
    ``runInteraction`` on one connection in the calling thread: the store's
    SQL, tested with no threads and no reactor.  Not for the node.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.connection = connect(db)
        self.interactions = 0

    def runInteraction(self, interaction: Any, *args: Any) -> Deferred:
        self.interactions += 1
        try:
            return succeed(run_sync(self.connection, interaction, *args))
        except Exception:
            return fail(Failure())

    def close(self) -> None:
        self.connection.close()
