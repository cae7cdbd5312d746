"""
A real PostgreSQL server for the tests: started once per test session in a
temporary directory, on a free port of 127.0.0.1, stopped at the end.

Tests that use it are skipped, with the reason, only where the server
cannot start (no ``initdb`` installed, no psycopg2, or a start that fails).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from support import free_port

_counter = itertools.count()


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """``postgresql://`` URL of the session's server (its ``postgres`` database)."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests need psycopg2 (pip install 'mmo[postgres]')")
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb; Debian: apt-get install postgresql)")
    base = tempfile.mkdtemp(prefix="mmo-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as the postgres user.
        if shutil.which("runuser") is None or subprocess.run(
                ["id", "postgres"], capture_output=True).returncode:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root and there is no postgres user to run PostgreSQL")
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(base, "db")
    port = free_port()
    pg_ctl = [*as_user, os.path.join(bindir, "pg_ctl"), "-D", data]
    try:
        subprocess.run([*as_user, os.path.join(bindir, "initdb"), "-D", data, "-U", "mmo",
                        "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*pg_ctl, "-w", "-t", "60", "-l", os.path.join(base, "server.log"),
                        "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=200", "start"],
                       check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", b"") or b""
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"PostgreSQL server cannot start: {e} {detail.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql://mmo@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "-t", "30", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """Create an empty database on the session's server; return its URL."""
    import psycopg2

    name = f"mmo_test_{os.getpid()}_{next(_counter)}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def postgresql_db(postgresql_url: str) -> str:
    """An empty database of its own for one test."""
    return fresh_database(postgresql_url)
