"""`ttscale sql` reads the ledger and nothing else: each known escape exits 2 and writes nothing.

Every case runs the CLI against a real ledger file, with HOME pointed into the test's folder (so
an extension install or a persistent secret would land there): the escapes the task names in a
subprocess, as a user runs them, the rest in-process. All cases run once per module; the tests
then check each one's exit code and message, and that no file in the folder changed: the ledger,
a second ledger that ATTACH would reach, and a victim file that COPY would overwrite.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from ledger_helpers import open_ledger
from typer.testing import CliRunner

from ttscale.cli import app

VICTIM_TEXT = "victim,content\nkeep,me\n"
PASSWD_MARK = "root:x:0:0"  # the first line of /etc/passwd on Linux

# (id, SQL, words the one-line message must contain). {victim}, {other}, {tmp} are paths.
ESCAPES: list[tuple[str, str, str]] = [
    ("copy-overwrites-file", "COPY runs TO '{victim}'", "COPY statements"),
    ("copy-query-to-new-file", "COPY (SELECT * FROM items) TO '{tmp}/new.csv'", "COPY statements"),
    ("copy-to-parquet", "COPY items TO '{tmp}/new.parquet' (FORMAT parquet)", "COPY statements"),
    ("copy-from-file", "COPY runs FROM '{victim}'", "COPY statements"),
    ("copy-from-database", "COPY FROM DATABASE ledger TO other", "COPY FROM DATABASE"),
    ("attach-read-write", "ATTACH '{other}' AS other (READ_WRITE)", "ATTACH statements"),
    (
        "attach-then-delete",
        "ATTACH '{other}' AS other (READ_WRITE); DELETE FROM other.runs",
        "2 statements given",
    ),
    ("attach-memory", "ATTACH ':memory:' AS scratch", "ATTACH statements"),
    ("detach", "DETACH ledger", "DETACH statements"),
    ("use", "USE memory", "USE statements"),
    ("two-selects", "SELECT 1; SELECT 2", "2 statements given"),
    ("select-then-copy", "SELECT 1; COPY runs TO '{victim}'", "2 statements given"),
    ("empty", "  ;  ", "no SQL statement"),
    ("read-text-shadow", "SELECT * FROM read_text('/etc/shadow')", 'file "/etc/shadow"'),
    ("read-text-victim", "SELECT * FROM read_text('{victim}')", "Cannot access file"),
    ("read-csv-passwd", "SELECT * FROM read_csv('/etc/passwd')", 'file "/etc/passwd"'),
    ("read-csv-auto", "SELECT * FROM read_csv_auto('/etc/passwd', sep=':')", "/etc/passwd"),
    ("read-csv-url", "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')", "127.0.0.1:9"),
    ("glob-etc", "SELECT * FROM glob('/etc/*')", 'file "/etc/*"'),
    ("glob-tmp", "SELECT * FROM glob('{tmp}/*')", "Cannot access file"),
    ("read-parquet", "SELECT * FROM read_parquet('{victim}')", "Cannot access file"),
    ("parquet-metadata", "SELECT * FROM parquet_metadata('{victim}')", "Cannot access file"),
    ("read-json", "SELECT * FROM read_json('/etc/passwd')", 'file "/etc/passwd"'),
    ("read-json-auto", "SELECT * FROM read_json_auto('{victim}')", "Cannot access file"),
    ("read-blob", "SELECT * FROM read_blob('/etc/passwd')", 'file "/etc/passwd"'),
    ("sniff-csv", "SELECT * FROM sniff_csv('/etc/passwd')", 'file "/etc/passwd"'),
    (
        "subquery-read",
        "SELECT count(*) FROM runs WHERE run_id IN (SELECT content FROM read_text('/etc/passwd'))",
        'file "/etc/passwd"',
    ),
    (
        "cte-read",
        "WITH p AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM p",
        'file "/etc/passwd"',
    ),
    ("install", "INSTALL httpfs", "INSTALL statements"),
    ("force-install", "FORCE INSTALL httpfs", "FORCE INSTALL statements"),
    ("install-from", "INSTALL spatial FROM community", "INSTALL statements"),
    ("load", "LOAD httpfs", "LOAD statements"),
    ("update-extensions", "UPDATE EXTENSIONS", "UPDATE EXTENSIONS statements"),
    ("set-external-access", "SET enable_external_access = true", "SET statements"),
    ("set-unlock", "SET lock_configuration = false", "SET statements"),
    ("set-threads", "SET threads = 1", "SET statements"),
    ("set-global", "SET GLOBAL memory_limit = '1GB'", "refused: SET"),
    ("set-variable", "SET VARIABLE x = 1", "SET VARIABLE statements"),
    ("reset", "RESET threads", "RESET statements"),
    ("pragma-set", "PRAGMA threads = 1", "PRAGMA statements"),
    ("pragma-profiling", "PRAGMA enable_profiling", "PRAGMA statements"),
    ("pragma-checkpoint", "PRAGMA force_checkpoint", "PRAGMA statements"),
    ("export-database", "EXPORT DATABASE '{tmp}/export'", "EXPORT DATABASE statements"),
    ("import-database", "IMPORT DATABASE '{tmp}'", "IMPORT DATABASE statements"),
    ("call-glob", "CALL glob('/etc/*')", "refused: CALL"),
    ("call-read-text", "CALL read_text('/etc/passwd')", "refused: CALL"),
    ("create-secret", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", "CREATE SECRET"),
    (
        "create-persistent-secret",
        "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
        "CREATE SECRET",
    ),
    ("drop-secret", "DROP SECRET s", "DROP SECRET statements"),
    ("checkpoint", "CHECKPOINT", "CHECKPOINT statements"),
    ("force-checkpoint", "FORCE CHECKPOINT", "FORCE CHECKPOINT statements"),
    ("vacuum", "VACUUM", "VACUUM statements"),
    ("begin", "BEGIN TRANSACTION", "refused: BEGIN"),
    ("commit", "COMMIT", "COMMIT statements"),
    ("prepare", "PREPARE p AS SELECT 1", "PREPARE statements"),
    ("create-table-as", "CREATE TABLE stolen AS SELECT * FROM runs", "CREATE TABLE statements"),
    ("create-temp-table", "CREATE TEMP TABLE t AS SELECT 1", "CREATE TABLE statements"),
    ("create-macro", "CREATE MACRO m(x) AS x", "CREATE MACRO statements"),
    ("create-view", "CREATE VIEW v AS SELECT 1", "CREATE VIEW statements"),
    ("insert", "INSERT INTO runs SELECT * FROM runs", "INSERT INTO statements"),
    ("update", "UPDATE runs SET status = 'x'", "UPDATE statements"),
    ("delete", "DELETE FROM item_decisions", "DELETE FROM statements"),
    ("drop", "DROP TABLE runs", "DROP TABLE statements"),
    ("alter", "ALTER TABLE runs ADD COLUMN x INTEGER", "ALTER TABLE statements"),
    ("explain-analyze-copy", "EXPLAIN ANALYZE COPY runs TO '{victim}'", "EXPLAIN ANALYZE COPY"),
    ("explain-delete", "EXPLAIN ANALYZE DELETE FROM runs", "EXPLAIN ANALYZE DELETE"),
    ("explain-read-text", "EXPLAIN ANALYZE SELECT * FROM read_text('/etc/passwd')", "/etc/passwd"),
    ("commented-copy", "/* just a select */ COPY runs TO '{victim}' -- really", "COPY statements"),
]
# Plain reads that must keep working, each in every format.
READS: list[tuple[str, str, str]] = [
    ("select", "SELECT item_id, calls FROM item_decisions ORDER BY item_id", "q3"),
    ("cost-accuracy", "SELECT strategy, budget, items, accuracy FROM cost_accuracy", "majority"),
    ("item-spend", "SELECT * FROM item_spend ORDER BY item_id LIMIT 2", "q1"),
    ("run-summary", "SELECT run_id, status, items FROM run_summary", "r1"),
    ("describe", "DESCRIBE item_decisions", "completion_tokens"),
    ("show-tables", "SHOW TABLES", "generation_calls"),
    ("summarize", "SUMMARIZE items", "question"),
    ("pragma-table-info", "PRAGMA table_info('runs')", "fingerprint"),
    ("explain", "EXPLAIN SELECT count(*) FROM item_decisions", "physical_plan"),
    ("explain-analyze", "EXPLAIN ANALYZE SELECT count(*) FROM runs", "analyzed_plan"),
    ("cte", "WITH x AS (SELECT item_id FROM items) SELECT count(*) AS n FROM x", "4"),
    ("pivot", "PIVOT item_decisions ON strategy USING count(*) GROUP BY run_id", "r1"),
    ("trailing-semicolon", "SELECT 42 AS answer;  -- done", "42"),
    (
        "json-of-a-column",
        "SELECT detail_json->>'$.votes' AS votes FROM item_decisions LIMIT 1",
        "votes",
    ),
]
FORMATS = ("table", "csv", "json")


# The escapes the task names, and one read per format, run as a user runs them: a subprocess.
# The rest run in-process through the same Typer app (a subprocess costs ~2 s of imports).
IN_SUBPROCESS = {
    "escape:copy-overwrites-file", "escape:attach-read-write", "escape:attach-then-delete",
    "escape:read-text-shadow", "escape:read-csv-passwd", "escape:glob-etc",
    "escape:read-parquet", "escape:read-json", "escape:two-selects", "escape:install",
    "escape:load", "escape:set-external-access", "escape:reset", "escape:pragma-set",
    "escape:export-database", "escape:call-glob", "escape:create-secret", "escape:detach",
    "escape:use", "escape:checkpoint", "escape:create-table-as", "replacement-scan",
    "missing-ledger", "read:select:table", "read:select:csv", "read:select:json",
}  # fmt: skip


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class World:
    tmp: Path
    ledger: Path
    other: Path
    victim: Path
    before: dict[str, str]
    results: dict[str, Outcome]

    def fill(self, sql: str) -> str:
        return sql.format(victim=self.victim, other=self.other, tmp=self.tmp)


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under root (the home folder too) and a hash of its bytes, but a SQLite catalog's
    -shm index and empty -wal log: a reader of a WAL-mode catalog opens them (a write would not
    leave the -wal empty)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not p.name.endswith("-shm")
        and not (p.name.endswith("-wal") and not p.stat().st_size)
    }


def _env(tmp: Path) -> dict[str, str]:
    return {"HOME": str(tmp / "home"), "AWS_EC2_METADATA_DISABLED": "true"}


def _subprocess(tmp: Path, args: tuple[str, ...]) -> Outcome:
    done = subprocess.run(
        [sys.executable, "-m", "ttscale.cli", *args],
        cwd=tmp,
        env=os.environ | _env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def _in_process(tmp: Path, args: tuple[str, ...]) -> Outcome:
    result = CliRunner().invoke(app, list(args), env=_env(tmp))
    return Outcome(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, scripted_ledger: Callable[[Path], Path]
) -> World:
    tmp = tmp_path_factory.mktemp("sandbox")
    (tmp / "home").mkdir()
    ledger, other, victim = tmp / "ledger.duckdb", tmp / "other.duckdb", tmp / "victim.csv"
    scripted_ledger(ledger)
    scripted_ledger(other)
    victim.write_text(VICTIM_TEXT)
    world = World(tmp, ledger, other, victim, _snapshot(tmp), {})
    calls: dict[str, tuple[str, ...]] = {
        f"escape:{case}": ("sql", world.fill(sql), "--ledger", str(ledger))
        for case, sql, _ in ESCAPES
    }
    calls["replacement-scan"] = ("sql", "SELECT * FROM '/etc/passwd'", "--ledger", str(ledger))
    calls["missing-ledger"] = ("sql", "SELECT 1", "--ledger", str(tmp / "none.duckdb"))
    for case, sql, _ in READS:
        for fmt in FORMATS:
            calls[f"read:{case}:{fmt}"] = ("sql", sql, "--ledger", str(ledger), "--format", fmt)
    assert calls.keys() >= IN_SUBPROCESS
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {key: pool.submit(_subprocess, tmp, calls[key]) for key in IN_SUBPROCESS}
        # Meanwhile, the rest in this process (CliRunner swaps sys.stdout; the pool never uses it).
        world.results = {
            key: _in_process(tmp, args) for key, args in calls.items() if key not in IN_SUBPROCESS
        }
        world.results |= {key: future.result() for key, future in futures.items()}
    return world


@pytest.mark.parametrize(("case", "words"), [(c, w) for c, _, w in ESCAPES])
def test_escape_is_refused_with_exit_2_and_one_line(world: World, case: str, words: str) -> None:
    result = world.results[f"escape:{case}"]
    output = result.output
    assert result.code == 2, output
    assert "Traceback" not in output
    assert result.stdout == "", output
    assert len(output.strip().splitlines()) == 1, output
    assert output.startswith("error: refused: "), output
    assert words in output, output
    assert PASSWD_MARK not in output
    assert "keep,me" not in output


def test_nothing_was_written(world: World) -> None:
    after = _snapshot(world.tmp)
    assert after == world.before  # no COPY target, no export, no extension, no secret, no WAL
    assert world.victim.read_text() == VICTIM_TEXT
    with open_ledger(str(world.other)) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM item_decisions").fetchone() == (4,)


def test_replacement_scan_of_a_file_reads_nothing(world: World) -> None:
    # A bare path in FROM is not a file here: DuckDB looks for a table of that name (exit 7).
    result = world.results["replacement-scan"]
    output = result.output
    assert result.code in (2, 7), output
    assert PASSWD_MARK not in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output


def test_missing_ledger_is_a_ledger_error(world: World) -> None:
    result = world.results["missing-ledger"]
    assert result.code == 7 and "no ledger at" in result.stderr, result.output


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("case", "expected"), [(c, e) for c, _, e in READS])
def test_reads_still_work(world: World, case: str, expected: str, fmt: str) -> None:
    result = world.results[f"read:{case}:{fmt}"]
    assert result.code == 0, result.output
    assert "Traceback" not in result.output
    assert expected in result.stdout, result.stdout
    if fmt == "json":
        rows = json.loads(result.stdout)
        assert isinstance(rows, list) and rows
    elif fmt == "csv":
        assert len(result.stdout.splitlines()) >= 2


def test_sql_from_the_docs_still_works(world: World) -> None:
    """The README's example queries, as a user pastes them."""
    query = (
        "SELECT count(*) AS mismatches FROM item_decisions d JOIN item_spend s "
        "USING (run_id, item_id, strategy, budget) "
        "WHERE d.completion_tokens <> s.completion_tokens OR d.calls <> s.calls"
    )
    result = _in_process(
        world.tmp, ("sql", query, "--ledger", str(world.ledger), "--format", "json")
    )
    assert result.code == 0, result.output
    assert json.loads(result.stdout) == [{"mismatches": 0}]
