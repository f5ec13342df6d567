"""A throwaway PostgreSQL cluster on a loopback port, for the lake's Postgres catalog."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

POSTGRES_PASSWORD = "ttscale-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Callable[[], str]]:
    """Starts ``initdb`` + ``pg_ctl`` on 127.0.0.1 (as the ``postgres`` user when run as root:
    initdb refuses root); yields a function that creates a fresh database and returns its
    libpq conninfo, password included (TCP connections need one: ``POSTGRES_PASSWORD``; the
    socket, used to create databases, is trusted). Skips, naming what is missing, where PostgreSQL is not installed."""
    bindir = _bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip(
            "PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql)"
        )
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is missing: cannot run initdb as postgres")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="ttscale-pg-"))
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()[-1000:]}")

    password_file = root / "password"
    password_file.write_text(POSTGRES_PASSWORD)
    if as_root:
        shutil.chown(password_file, "postgres", "postgres")
    run(str(bindir / "initdb"), "-D", str(data), "--auth-local=trust",
        "--auth-host=scram-sha-256", f"--pwfile={password_file}", "-U", "postgres")  # fmt: skip
    options = f"-p {port} -k {root} -h 127.0.0.1 -c max_connections=200 -c fsync=off"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "log"),
        "-w",
        "start",
    )

    def new_database() -> str:
        name = f"lake_{uuid.uuid4().hex[:8]}"
        run(str(bindir / "createdb"), "-h", str(root), "-p", str(port), "-U", "postgres", name)
        return (
            f"dbname={name} host=127.0.0.1 port={port} user=postgres password={POSTGRES_PASSWORD}"
        )

    try:
        yield new_database
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_s3_ledger(postgres_server: Callable[[], str], s3_env: str) -> str:
    """A Postgres catalog (fresh database) with the Parquet data on moto's S3 server."""
    return f"ducklake:postgres:{postgres_server()} data_path=s3://{s3_env}/lake/"
