"""The SQLite state database, with numbered migrations.

One short-lived connection per operation: Streamlit reruns scripts on several threads, and the
training process writes from another process, so nothing holds a connection open for long.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from legalft.errors import HomeNotWritable, IndexDamaged
from legalft.home import home_dir

# Append only: a migration that shipped is never edited, a new one is added after it.
MIGRATIONS: list[str] = [
    # 1: datasets registered for training
    """
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        total_records INTEGER NOT NULL,
        kept_records INTEGER NOT NULL,
        dropped_records INTEGER NOT NULL,
        repaired_records INTEGER NOT NULL,
        report_json TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX datasets_sha ON datasets(sha256);
    """,
    # 2: one job table for both paths, with the managed API's status vocabulary
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL CHECK (path IN ('local', 'token_factory')),
        status TEXT NOT NULL CHECK (status IN
            ('validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
        name TEXT,
        base_model TEXT,
        dataset_id INTEGER REFERENCES datasets(id),
        dataset_path TEXT,
        config_json TEXT NOT NULL DEFAULT '{}',
        run_dir TEXT,
        remote_id TEXT,
        remote_json TEXT NOT NULL DEFAULT '{}',
        output_json TEXT NOT NULL DEFAULT '{}',
        progress_json TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        estimated_cost REAL,
        actual_cost REAL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX jobs_created ON jobs(created_at);
    CREATE TABLE job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        remote_id TEXT,
        created_at TEXT NOT NULL,
        level TEXT NOT NULL DEFAULT 'info',
        message TEXT NOT NULL,
        UNIQUE (job_id, remote_id)
    );
    CREATE TABLE job_checkpoints (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        checkpoint_id TEXT NOT NULL,
        step INTEGER,
        created_at TEXT,
        metrics_json TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (job_id, checkpoint_id)
    );
    """,
    # 3: model endpoints the Chat page can talk to (managed deployments, vLLM, local servers)
    """
    CREATE TABLE endpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        base_url TEXT NOT NULL,
        model TEXT NOT NULL,
        status TEXT NOT NULL,
        job_id TEXT REFERENCES jobs(id) ON DELETE SET NULL,
        details_json TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (kind, model)
    );
    """,
    # 4: user overrides of catalogue prices
    """
    CREATE TABLE price_overrides (
        key TEXT PRIMARY KEY,
        value REAL NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 5: when a job was last polled at its service (one poll per job per interval, whoever asks)
    """
    ALTER TABLE jobs ADD COLUMN polled_at REAL;
    """,
    # 6: the statute index (FTS5, BM25) and evaluation runs (per run, target and question; resumable)
    """
    CREATE TABLE statute_sources (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        name TEXT,
        sha256 TEXT NOT NULL,
        lines INTEGER NOT NULL,
        provisions INTEGER NOT NULL,
        report_json TEXT NOT NULL DEFAULT '{}',
        indexed_at TEXT NOT NULL
    );
    CREATE TABLE statute_acts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source_id INTEGER NOT NULL REFERENCES statute_sources(id) ON DELETE CASCADE,
        act_key TEXT NOT NULL,
        title TEXT NOT NULL,
        year INTEGER,
        chapter TEXT,
        leg_type TEXT,
        kinds TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX statute_acts_key ON statute_acts(act_key);
    CREATE TABLE statute_provisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source_id INTEGER NOT NULL REFERENCES statute_sources(id) ON DELETE CASCADE,
        act_key TEXT NOT NULL,
        act TEXT NOT NULL,
        year INTEGER,
        chapter TEXT,
        kind TEXT NOT NULL,
        number TEXT NOT NULL,
        schedule TEXT,
        heading TEXT,
        text TEXT NOT NULL,
        url TEXT,
        line INTEGER
    );
    CREATE INDEX statute_provisions_key ON statute_provisions(act_key, kind, number);
    CREATE VIRTUAL TABLE statute_fts USING fts5(
        act, heading, text, content='statute_provisions', content_rowid='id', tokenize='porter unicode61'
    );
    CREATE TRIGGER statute_provisions_ai AFTER INSERT ON statute_provisions BEGIN
        INSERT INTO statute_fts(rowid, act, heading, text) VALUES (new.id, new.act, new.heading, new.text);
    END;
    CREATE TRIGGER statute_provisions_ad AFTER DELETE ON statute_provisions BEGIN
        INSERT INTO statute_fts(statute_fts, rowid, act, heading, text)
            VALUES ('delete', old.id, old.act, old.heading, old.text);
    END;
    CREATE TABLE eval_runs (
        id TEXT PRIMARY KEY,
        name TEXT,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
        set_json TEXT NOT NULL DEFAULT '{}',
        config_json TEXT NOT NULL DEFAULT '{}',
        summary_json TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE TABLE eval_targets (
        run_id TEXT NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        endpoint_id INTEGER,
        endpoint_json TEXT NOT NULL DEFAULT '{}',
        grounded INTEGER NOT NULL DEFAULT 0,
        role TEXT,
        PRIMARY KEY (run_id, label)
    );
    CREATE TABLE eval_items (
        run_id TEXT NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        line INTEGER,
        question TEXT NOT NULL,
        reference TEXT NOT NULL,
        meta_json TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE eval_answers (
        run_id TEXT NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        idx INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
        answer TEXT,
        error TEXT,
        seconds REAL,
        attempts INTEGER NOT NULL DEFAULT 1,
        usage_json TEXT NOT NULL DEFAULT '{}',
        citations_json TEXT NOT NULL DEFAULT '[]',
        retrieved_json TEXT NOT NULL DEFAULT '[]',
        metrics_json TEXT NOT NULL DEFAULT '{}',
        judge_json TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (run_id, label, idx)
    );
    """,
    # 7: who may do what (allow-list and roles), the append-only audit trail, monthly budgets
    """
    CREATE TABLE users (
        principal TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'trainer', 'admin')),
        added_by TEXT NOT NULL,
        added_at TEXT NOT NULL
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT,
        source TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'refused', 'failed', 'override')),
        estimated_cost REAL,
        details_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_log_at ON audit_log(at);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE budgets (
        kind TEXT PRIMARY KEY CHECK (kind IN ('managed', 'gpu')),
        monthly_usd REAL NOT NULL CHECK (monthly_usd >= 0),
        updated_by TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
]


def db_path() -> Path:
    return home_dir() / "legalft.db"


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations; returns the schema version.

    Serialised across processes by a lock file beside the database, inside which the version is
    read again: ten commands starting at once on a fresh home apply each migration exactly once.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return len(MIGRATIONS)
    from filelock import FileLock

    try:
        lock = FileLock(db_path().with_name(".migrate.lock"))
        lock.acquire(timeout=60)
    except OSError as exc:
        raise _state_error(sqlite3.OperationalError(f"unable to open the lock file: {exc.strerror}"), db_path()) \
            from None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.executescript(f"BEGIN; {sql}\nPRAGMA user_version = {number}; COMMIT;")
    finally:
        lock.release()
    return len(MIGRATIONS)


def _state_error(exc: sqlite3.Error, path: Path) -> Exception:
    """A plain, one-line reason for a database that cannot be opened or written."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return IndexDamaged(
            f"the job index {path} is damaged ({exc}); run `legalft doctor --repair` to rebuild it from "
            "the run folders and the saved managed records (the damaged file is kept beside it)")
    if "readonly" in text or "unable to open" in text or "read-only" in text or "disk i/o" in text:
        return HomeNotWritable(
            f"cannot write the state folder {path.parent} ({exc}); set LEGALFT_HOME to a folder you can "
            "write, or fix its permissions")
    return exc


@contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A migrated connection that commits on success and always closes.

    Raises ``HomeNotWritable`` or ``IndexDamaged`` (one line each, with what to do) instead of
    SQLite's own errors when the home cannot be written or the file is not a database.
    """
    path = db_path()
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise _state_error(exc, path) from None
    try:
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn)
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise _state_error(exc, path) from None
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _state_error(exc, path) from None
    finally:
        conn.close()
