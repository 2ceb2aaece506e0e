"""The SQLite state database, with numbered migrations.

One short-lived connection per operation: Streamlit reruns scripts on several threads, and the
training process writes from another process, so nothing holds a connection open for long.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
]


def db_path() -> Path:
    return home_dir() / "legalft.db"


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations; returns the schema version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN; {sql} PRAGMA user_version = {number}; COMMIT;")
    return len(MIGRATIONS)


@contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A migrated connection that commits on success and always closes."""
    conn = sqlite3.connect(db_path(), timeout=30, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
        conn.execute("BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()
