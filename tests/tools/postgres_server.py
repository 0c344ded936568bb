"""A real PostgreSQL server for tests, started from Debian's packages on loopback in a scratch folder.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="meshpilot-pg-", dir="/tmp"))
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self.as_postgres else list(args)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        data = self.folder / "data"
        self._run(self.initdb, "-D", str(data), "-U", "meshpilot", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(self.pg_ctl, "-D", str(data), "-l", str(self.folder / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        return f"postgresql+psycopg://meshpilot@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def server_or_skip() -> PostgresServer:
    """A server for a test; without the binaries the test is skipped, or fails on CI where they must exist."""
    import pytest

    try:
        return PostgresServer()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def load_warehouse(url: str, warehouse: Path, tables: list[str] | None = None) -> None:
    """Copy DuckDB warehouse tables (all of them by default) into the server, schema by schema."""
    import duckdb
    import psycopg

    with duckdb.connect(str(warehouse), read_only=True) as source, \
            psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as target:
        names = tables or [f"{s}.{t}" for s, t in source.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()]
        for table in names:
            schema = table.split(".")[0]
            target.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            columns = source.execute(f"DESCRIBE {table}").fetchall()
            types = {"DOUBLE": "double precision", "HUGEINT": "numeric"}
            target.execute(f"CREATE TABLE {table} ({', '.join(f'{c[0]} {types.get(c[1], c[1])}' for c in columns)})")
            with target.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for row in source.execute(f"SELECT * FROM {table}").fetchall():
                    copy.write_row(row)
