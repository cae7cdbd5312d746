"""
The database schema, its versions, and the two SQL dialects.

Every statement is written once with ``?`` placeholders; :class:`Dialect`
turns it into the driver's style and supplies the few pieces that differ
(column types, the database's clock, how a writer takes its lock).  The
schema is created and moved forward by :func:`migrate`, one numbered step at
a time, recorded in the ``schema_version`` table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class SchemaError(Exception):
    """The database cannot be used by this version of mmo."""


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite and PostgreSQL."""

    name: str
    placeholder: str
    blob: str
    #: The database's clock in seconds since the epoch (one clock for every
    #: node of a cluster, whatever the hosts' own clocks say).
    now: str
    #: Run first in a transaction that writes: takes the lock that serializes
    #: writers (SQLite), or nothing (PostgreSQL locks rows instead).
    begin_write: str | None
    #: Serializes the migrations of nodes that start together.
    migration_lock: str | None
    #: Appended to a SELECT of an account row to lock it for the transaction.
    for_update: str

    def sql(self, statement: str) -> str:
        if self.placeholder == "?":
            return statement
        return statement.replace("?", self.placeholder)


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    blob="BLOB",
    now="((julianday('now') - 2440587.5) * 86400.0)",
    begin_write="BEGIN IMMEDIATE",
    migration_lock=None,
    for_update="",
)

POSTGRESQL = Dialect(
    name="postgresql",
    placeholder="%s",
    blob="BYTEA",
    now="(extract(epoch from clock_timestamp())::double precision)",
    begin_write=None,
    migration_lock="SELECT pg_advisory_xact_lock(7270010001)",
    for_update=" FOR UPDATE",
)


def _v1(d: Dialect) -> list[str]:
    # Accounts and what each player carries from one session to the next.
    return [
        f"""CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            salt {d.blob} NOT NULL,
            digest {d.blob} NOT NULL,
            iterations INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE player_state (
            name TEXT PRIMARY KEY REFERENCES accounts (name) ON DELETE CASCADE,
            zone TEXT NOT NULL,
            x DOUBLE PRECISION NOT NULL,
            y DOUBLE PRECISION NOT NULL,
            data TEXT NOT NULL,
            saved_at DOUBLE PRECISION NOT NULL)""",
    ]


def _v2(d: Dialect) -> list[str]:
    # Who is playing where, for clusters that share one database: a node
    # refreshes its row while it runs; a player's row names its node.
    return [
        """CREATE TABLE nodes (
            node_id TEXT PRIMARY KEY,
            seen_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE online (
            name TEXT PRIMARY KEY,
            node_id TEXT NOT NULL,
            since DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX online_by_node ON online (node_id)",
    ]


#: Step ``i`` takes the schema from version ``i`` to ``i + 1``.
MIGRATIONS: list[Callable[[Dialect], list[str]]] = [_v1, _v2]
VERSION = len(MIGRATIONS)


def schema_version(txn: Any, d: Dialect) -> int:
    txn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    txn.execute("SELECT version FROM schema_version")
    row = txn.fetchone()
    return 0 if row is None else int(row[0])


def migrate(txn: Any, d: Dialect, target: int = VERSION) -> tuple[int, int]:
    """
    Bring the schema to ``target`` inside the caller's transaction; return
    the versions before and after.  A database newer than this code is
    refused rather than touched.
    """
    if d.begin_write:
        txn.execute(d.begin_write)
    if d.migration_lock:
        txn.execute(d.migration_lock)
    before = schema_version(txn, d)
    if before > VERSION:
        raise SchemaError(
            f"the database has schema version {before}; this mmo knows "
            f"versions up to {VERSION}: upgrade mmo, or use another database")
    for step in range(before, target):
        for statement in MIGRATIONS[step](d):
            txn.execute(statement)
    if target > before:
        if before == 0:
            txn.execute(d.sql("INSERT INTO schema_version (version) VALUES (?)"), (target,))
        else:
            txn.execute(d.sql("UPDATE schema_version SET version = ?"), (target,))
    return before, max(before, target)
