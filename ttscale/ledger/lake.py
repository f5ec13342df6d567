"""Where the ledger lives and how every connection to it is opened: one DuckLake, one function.

The ledger is a DuckLake: a SQL catalog (SQLite file embedded, Postgres in the service) plus
Parquet data files. Several processes may write at once and readers never block writers; the
price is that commits can conflict, and a SQLite catalog can answer "database is locked", so
callers wrap whole transactions (and reads) in ``retry_lake`` (``Ledger`` and the SQL sandbox do).
A SQLite catalog is switched to WAL mode when opened for writing (``_use_wal``).

The ledger setting is one string (``--ledger``, ``BatchRequest.ledger_path``):

- ``ducklake:sqlite:PATH`` — SQLite catalog at PATH, data in ``PATH.files/`` (DuckLake's own
  default for a file catalog).
- ``ducklake:postgres:dbname=… host=… [user=… password=… port=…]`` — Postgres catalog; a data
  path is required the first time (the catalog remembers it).
- Either may end with `` data_path=DIR`` (the last space-separated word; ``s3://bucket/prefix/``
  or a local folder) to put the Parquet files elsewhere.
- A plain local path ``PATH`` means ``ducklake:sqlite:PATH``.

Extensions load from the installed ``duckdb-extension-*`` packages by file path (their signatures
are checked: unsigned extensions stay disabled); only when a package is missing does DuckDB's own
``INSTALL`` run, which needs the network.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
from tenacity import RetryCallState

from ttscale.errors import LedgerError
from ttscale.retry import retrying

LAKE = "lake"
"""The name the lake is attached under; every connection runs ``USE lake``."""

_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",
}
_DATA_PATH_WORD = " data_path="
# What a concurrent writer or a busy SQLite catalog answers; anything else is not retried.
_TRANSIENT = (
    "database is locked",
    "conflict",
    "failed to query most recent snapshot",
    "database is busy",
    "sqlite_busy",
    # Postgres, when two processes create the same lake's catalog tables at once.
    "duplicate key value violates unique constraint",
)
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeSpec:
    """A parsed ledger setting: the catalog (``sqlite:/abs/path`` or ``postgres:…``), data path."""

    catalog: str
    data_path: str | None

    @property
    def kind(self) -> str:
        return self.catalog.split(":", 1)[0]

    @property
    def catalog_file(self) -> Path | None:
        """The SQLite catalog file, or None for a server catalog."""
        return Path(self.catalog.split(":", 1)[1]) if self.kind == "sqlite" else None

    @property
    def uri(self) -> str:
        """The setting that opens this lake again, data path included when not the default."""
        default = f"{self.catalog_file}.files/" if self.catalog_file else None
        tail = f"{_DATA_PATH_WORD}{self.data_path}" if self.data_path != default else ""
        return f"ducklake:{self.catalog}{tail}"

    @property
    def display(self) -> str:
        """``uri`` with any password masked, for messages and results."""
        return mask_passwords(self.uri)

    def local_dirs(self) -> list[Path]:
        """Local folders the lake's files live in (for the SQL sandbox's allow-list)."""
        dirs = [self.catalog_file.parent] if self.catalog_file else []
        if self.data_path and "://" not in self.data_path:
            dirs.append(Path(self.data_path))
        return dirs


def mask_passwords(text: str) -> str:
    """``text`` with every libpq ``password=…`` value replaced by ``***``."""
    return re.sub(r"(password=)[^\s\"']+", r"\1***", text)


def parse_ledger(setting: str | Path) -> LakeSpec:
    """The ``LakeSpec`` of a ledger setting (see the module docstring); relative paths resolved."""
    text = str(setting).strip()
    data_path: str | None = None
    head, sep, tail = text.rpartition(_DATA_PATH_WORD)
    if sep and " " not in tail.strip():
        text, data_path = head.rstrip(), tail.strip()
    if text in (":memory:", "ducklake:sqlite::memory:"):
        # A lake's catalog and Parquet files are files: ":memory:" would create both, named
        # ":memory:", in the working directory and share them with every later run.
        raise LedgerError("the ledger cannot be in memory: give a path or a ducklake: URI")
    if not text.startswith("ducklake:"):
        if "://" in text or text.startswith(("sqlite:", "postgres:")):
            raise LedgerError(
                f"ledger {text!r}: give a local path, ducklake:sqlite:PATH or "
                "ducklake:postgres:CONNINFO (with data_path=… for the data files)"
            )
        text = f"ducklake:sqlite:{text}"
    kind, _, rest = text.removeprefix("ducklake:").partition(":")
    if kind == "sqlite":
        if not rest:
            raise LedgerError("ledger ducklake:sqlite: needs a catalog file path")
        path = Path(rest).expanduser().resolve()
        data_path = _absolute(data_path) if data_path else f"{path}.files/"
        return LakeSpec(f"sqlite:{path}", data_path)
    if kind == "postgres":
        return LakeSpec(f"postgres:{rest}", _absolute(data_path) if data_path else None)
    raise LedgerError(f"ledger {setting!r}: the catalog must be sqlite: or postgres:, not {kind!r}")


def _absolute(data_path: str) -> str:
    # DuckLake stores a relative DATA_PATH as given and resolves it against the reader's working
    # directory: store it absolute so every process finds the same files.
    if "://" in data_path:
        return data_path.rstrip("/") + "/"
    return str(Path(data_path).expanduser().resolve()) + "/"


def extension_file(name: str) -> Path | None:
    """The installed ``duckdb-extension-*`` package's file for extension ``name``, if any."""
    spec = importlib.util.find_spec(_PACKAGES[name])
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}"
    path = path / f"{name}.duckdb_extension"
    return path if path.is_file() else None


def load_extensions(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """LOAD each extension from its package's file; INSTALL (network) only if it is missing."""
    for name in names:
        path = extension_file(name)
        try:
            if path is not None:
                con.execute(f"LOAD '{path}'")
            else:
                con.execute(f"INSTALL {name}")
                con.execute(f"LOAD {name}")
        except duckdb.Error as exc:
            raise LedgerError(
                f"cannot load the DuckDB extension {name} "
                f"({'from ' + str(path) if path else 'no duckdb-extension package installed'}): "
                f"{_first_line(exc)}"
            ) from None


def _extensions(spec: LakeSpec) -> list[str]:
    names = ["ducklake", "sqlite_scanner" if spec.kind == "sqlite" else "postgres_scanner"]
    if spec.data_path and "://" in spec.data_path:
        names.append("httpfs")
    return names


def _s3_secret_sql() -> str:
    """A session S3 secret from the standard AWS environment (as ``storage.s3`` reads it)."""
    env = os.environ
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
    options = {
        "KEY_ID": env.get("AWS_ACCESS_KEY_ID", ""),
        "SECRET": env.get("AWS_SECRET_ACCESS_KEY", ""),
        "SESSION_TOKEN": env.get("AWS_SESSION_TOKEN", ""),
        "REGION": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    }
    parts = [f"{k} {_quote(v)}" for k, v in options.items() if v]
    if endpoint:
        host = endpoint.split("://", 1)[-1].rstrip("/")
        parts += [f"ENDPOINT {_quote(host)}", "URL_STYLE 'path'"]
        parts.append(f"USE_SSL {str(not endpoint.startswith('http://')).lower()}")
    return f"CREATE OR REPLACE SECRET ttscale_lake_s3 (TYPE s3, {', '.join(parts)})"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def attach_sql(spec: LakeSpec, *, read_only: bool) -> str:
    """The ATTACH statement for the lake, as a plain ``duckdb`` user would type it."""
    options = [f"DATA_PATH {_quote(spec.data_path)}"] if spec.data_path else []
    if read_only:
        options.append("READ_ONLY")
    tail = f" ({', '.join(options)})" if options else ""
    return f"ATTACH {_quote('ducklake:' + spec.catalog)} AS {LAKE}{tail}"


def attach_script(setting: str | Path, *, read_only: bool = True) -> str:
    """The SQL a plain ``duckdb`` CLI (1.5.5) or Python user runs to attach this lake: LOAD of
    each packaged extension file, then ATTACH and USE (an S3 data path also needs a
    ``CREATE SECRET``; see the README)."""
    spec = parse_ledger(setting)
    lines = [f"LOAD '{extension_file(name) or name}';" for name in _extensions(spec)]
    return "\n".join([*lines, attach_sql(spec, read_only=read_only) + ";", f"USE {LAKE};"])


MEMORY_LIMIT_ENV = "TTSCALE_LEDGER_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "2GB"
"""What DuckDB may hold in memory for one ledger connection before it spills to disk. DuckDB's
own default is 80% of the machine's memory, which an ingest of millions of calls fills (7 GB
at 10M calls); bounded, the same ingest spills a little and is no slower (bench_report_scale)."""


def _memory_settings() -> dict[str, str]:
    """DuckDB's memory limit (``$TTSCALE_LEDGER_MEMORY_LIMIT``, a DuckDB size such as 4GB) and
    where it spills: this process's own folder in the system temporary directory, made only
    when DuckDB spills (never the working directory, which pods keep clean)."""
    from ttscale import tempfiles

    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT
    spill = Path(tempfile.gettempdir()) / f"{tempfiles.prefix('duckdb')}spill"
    return {"memory_limit": limit, "temp_directory": str(spill)}


def connect_lake(
    setting: str | Path | LakeSpec,
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake attached as ``lake`` and in use.

    The one way the service opens the ledger. ``read_only`` attaches it read-only (and a missing
    SQLite catalog is an error rather than a new lake). Raises ``LedgerError`` with one line.
    """
    spec = setting if isinstance(setting, LakeSpec) else parse_ledger(setting)
    catalog_file = spec.catalog_file
    if catalog_file is not None:
        if read_only and not catalog_file.is_file():
            raise LedgerError(f"no ledger at {catalog_file}")
        if catalog_file.is_file() and _is_duckdb_file(catalog_file):
            raise LedgerError(
                f"{catalog_file} is a DuckDB ledger file from before the lake: give another "
                f"--ledger path, e.g. ledger.sqlite, and bring its runs in with "
                f"'ttscale ledger import {catalog_file} --ledger ledger.sqlite'"
            )
        try:
            catalog_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger folder {catalog_file.parent}: {exc.strerror}"
            ) from None
        if not read_only:
            _use_wal(catalog_file)
    try:
        con = duckdb.connect(config=_memory_settings() | dict(config or {}))
    except duckdb.Error as exc:  # the only setting a user gives here is the memory limit
        raise LedgerError(
            f"cannot open ledger {spec.display}: {MEMORY_LIMIT_ENV}: {_first_line(exc)}"
        ) from None
    try:
        load_extensions(con, _extensions(spec))
        if spec.data_path and "://" in spec.data_path:
            con.execute(_s3_secret_sql())
        attach = retrying("ledger", _creating_race, before_sleep=_log_retry).wraps(con.execute)
        attach(attach_sql(spec, read_only=read_only))
        con.execute(f"USE {LAKE}")
    except duckdb.Error as exc:
        con.close()
        # DuckDB's message quotes the conninfo, password included.
        reason = mask_passwords(_first_line(exc))
        raise LedgerError(f"cannot open ledger {spec.display}: {reason}") from None
    except BaseException:
        con.close()
        raise
    return con


def stored_data_path(con: duckdb.DuckDBPyConnection) -> str | None:
    """The data path the attached lake's catalog records (None for a lake not created yet)."""
    try:
        row = con.execute(
            f"SELECT value FROM __ducklake_metadata_{LAKE}.ducklake_metadata "
            "WHERE key = 'data_path'"
        ).fetchone()
    except duckdb.Error:
        return None
    return str(row[0]) if row and row[0] else None


WRITE_CHECK_FILE = "_ttscale_write_check.csv"
"""What ``check_data_path_writable`` writes (and overwrites) at an object-store data path's root:
an object store has no permission to ask about, only a write that succeeds or is refused."""


def check_data_path_writable(spec: LakeSpec) -> None:
    """The lake's data files can be written where they go, or ``LedgerError`` in one line.

    A local folder gets a temporary file, created and removed; an ``s3://`` data path gets
    ``WRITE_CHECK_FILE`` written through DuckDB with the credentials the lake itself uses, so a
    wrong key, a missing bucket or a read-only policy shows now, not at ingest.
    """
    if not spec.data_path:
        return
    if "://" not in spec.data_path:
        _check_local_folder(Path(spec.data_path), "ledger data path")
        return
    con = duckdb.connect()
    try:
        load_extensions(con, ["httpfs"])
        con.execute(_s3_secret_sql())
        target = _quote(spec.data_path + WRITE_CHECK_FILE)
        con.execute(f"COPY (SELECT 'ttscale' AS write_check) TO {target} (FORMAT csv)")
    except duckdb.Error as exc:
        raise LedgerError(
            f"cannot write the ledger's data path {spec.data_path}: {_first_line(exc)}"
        ) from None
    finally:
        con.close()


def check_catalog_folder_writable(spec: LakeSpec) -> None:
    """A SQLite catalog's folder can be created and written (the catalog, its WAL and journal
    files are created there), and an existing catalog file is writable."""
    if spec.catalog_file is None:
        return
    _check_local_folder(spec.catalog_file.parent, "ledger folder")
    if spec.catalog_file.exists() and not os.access(spec.catalog_file, os.W_OK):
        raise LedgerError(f"the ledger catalog {spec.catalog_file} is not writable")


def _check_local_folder(folder: Path, what: str) -> None:
    # A real write, not os.access: it answers for root, ACLs and read-only mounts too.
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ttscale-write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise LedgerError(f"the {what} {folder} is not writable: {exc.strerror}") from None


def _use_wal(catalog_file: Path) -> None:
    """Put the SQLite catalog in WAL mode (it stays so; a no-op once it is).

    In SQLite's default rollback-journal mode a reader's open transaction blocks a writer's
    commit (measured: commits waited out the 5 s busy timeout, reads failed "database is
    locked"). In WAL mode readers never block the writer, and a writer whose snapshot went stale
    gets "database is locked" at once, so two overlapping ingests serialise: the second rolls
    back, is retried, and its anti-join sees the first's rows.
    """
    try:
        with contextlib.closing(sqlite3.connect(catalog_file, timeout=5)) as db:
            db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error:
        pass  # busy now: the lake works in rollback mode too (retried); a later open switches it


def _is_duckdb_file(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(12)[8:12] == b"DUCK"


def is_transient(exc: BaseException) -> bool:
    """A write conflict or a busy catalog: the same work, tried again, may succeed."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error | LedgerError) and any(t in text for t in _TRANSIENT)


def _creating_race(exc: BaseException) -> bool:
    """Attaching a lake another process is creating at this moment: on Postgres the loser's
    CREATE TABLE answers "already exists" (or a duplicate key, above); attached again, it finds
    the lake the winner created (DuckLake creates its catalog in one transaction)."""
    text = str(exc).lower()
    return is_transient(exc) or (
        isinstance(exc, duckdb.Error)
        and "failed to initialize ducklake" in text
        and "already exists" in text
    )


def retry_lake(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` retried on transient lake errors: the "ledger" policy of ``ttscale/retry.py``
    (``TTSCALE_LEDGER_RETRY_ATTEMPTS``, default 12; jittered exponential waits up to 2 s).
    ``fn`` must be idempotent as a whole."""
    return retrying("ledger", is_transient, before_sleep=_log_retry).wraps(fn)


def _log_retry(state: RetryCallState) -> None:
    # One line per retry, so conflicts show up in a run's log (and the concurrency test counts them).
    exc = state.outcome.exception() if state.outcome else None
    reason = " ".join(str(exc).split())[-160:]  # the last words say why (locked, conflict…)
    log.info("ledger retrying (attempt %d): %s", state.attempt_number, reason)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
