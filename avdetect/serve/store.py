"""The service's job database: SQLite, created and migrated by the service itself.

One row per accepted job, written (and committed, ``synchronous=FULL``) before the client is
told the job id, so a job that was accepted is never lost; the finished report JSON (and its
HTML rendering) is stored in the same row in the same transaction that marks it done, so a
finished result is never lost either. A job found ``running`` when the service starts was cut
off by a crash or a kill: it is queued again (and failed for good after
``max_interruptions`` such restarts, so that a file which kills the detector cannot crash the
service forever).

Schema versions live in the ``schema_version`` table; :data:`MIGRATIONS` lists the steps from
an empty file to the current version, each applied in its own transaction. A database written
by a newer avdetect (a higher version than this one knows) is refused, not guessed at.

Only one service may own a database at a time: :class:`JobStore` holds an exclusive lock on
``<db>.lock`` while open (released by the kernel when the process dies, even by SIGKILL).
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avdetect.errors import ServeError

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed")

#: (version, statements) applied in order to bring a database to ``version``.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (1, (
        """CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- acceptance order (the queue order)
            id TEXT NOT NULL UNIQUE,                 -- what clients see
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            source TEXT NOT NULL CHECK (source IN ('upload', 'path')),
            name TEXT NOT NULL,                      -- the file as the client named it
            path TEXT NOT NULL,                      -- where the service reads it
            size_bytes INTEGER NOT NULL,
            duration_s REAL,
            submitted_s REAL NOT NULL,               -- unix time, seconds
            started_s REAL,
            finished_s REAL,
            attempts INTEGER NOT NULL DEFAULT 0,     -- times a worker started it
            interruptions INTEGER NOT NULL DEFAULT 0, -- times the service died while it ran
            error_type TEXT,
            error TEXT,
            report_json TEXT,
            report_html TEXT
        )""",
        "CREATE INDEX jobs_by_state ON jobs (state, seq)",
    )),
    (2, (
        # seconds per detect stage of every finished job (the /metrics summaries), backfilled
        # from the reports of version-1 databases in :func:`_backfill_stage_seconds`
        """CREATE TABLE stage_seconds (
            job_id TEXT NOT NULL REFERENCES jobs (id),
            stage TEXT NOT NULL,
            seconds REAL NOT NULL,
            PRIMARY KEY (job_id, stage)
        )""",
    )),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


@dataclass(frozen=True)
class Job:
    """One row of ``jobs`` (without the report bodies)."""

    id: str
    state: str
    source: str
    name: str
    path: str
    size_bytes: int
    duration_s: float | None
    submitted_s: float
    started_s: float | None
    finished_s: float | None
    attempts: int
    interruptions: int
    error_type: str | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """The public view: times as ISO 8601 (UTC) and durations in seconds."""
        def iso(t: float | None) -> str | None:
            return None if t is None else _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")

        end = self.started_s if self.started_s is not None else time.time()
        d: dict[str, Any] = {
            "id": self.id, "state": self.state, "file": self.name, "source": self.source,
            "size_bytes": self.size_bytes, "duration_s": self.duration_s,
            "submitted_at": iso(self.submitted_s), "started_at": iso(self.started_s), "finished_at": iso(self.finished_s),
            "wait_s": round(max(0.0, end - self.submitted_s), 3),
            "run_s": None if self.started_s is None else round((self.finished_s or time.time()) - self.started_s, 3),
            "attempts": self.attempts, "interruptions": self.interruptions,
        }
        if self.state == "failed":
            d["error_type"], d["error"] = self.error_type, self.error
        return d


_JOB_COLUMNS = ("id, state, source, name, path, size_bytes, duration_s, submitted_s, started_s, finished_s, attempts, "
                "interruptions, error_type, error")


def _schema_version(conn: sqlite3.Connection) -> int:
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not has:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _backfill_stage_seconds(conn: sqlite3.Connection) -> int:
    """Stage seconds of jobs finished before version 2, from their stored reports."""
    n = 0
    for job_id, text in conn.execute("SELECT id, report_json FROM jobs WHERE state = 'done' AND report_json IS NOT NULL").fetchall():
        stages = json.loads(text).get("provenance", {}).get("stage_seconds", {})
        conn.executemany("INSERT OR REPLACE INTO stage_seconds (job_id, stage, seconds) VALUES (?, ?, ?)",
                         [(job_id, k, float(v)) for k, v in stages.items()])
        n += 1
    return n


def migrate(conn: sqlite3.Connection, upto: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema version ``upto`` (each step in its own transaction); returns
    the version found. Raises :class:`ServeError` for a database newer than this code."""
    found = _schema_version(conn)
    if found > SCHEMA_VERSION:
        raise ServeError(f"the job database has schema version {found}, newer than this avdetect's "
                         f"{SCHEMA_VERSION}: upgrade avdetect or use another --db")
    for version, statements in MIGRATIONS:
        if version <= found or version > upto:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 1:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)")
            for sql in statements:
                conn.execute(sql)
            if version == 2:
                n = _backfill_stage_seconds(conn)
                if n:
                    log.info("schema 2: stage seconds of %d earlier jobs backfilled", n)
            conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                         (version, _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("job database migrated to schema version %d", version)
    return found


def connect(path: str | Path) -> sqlite3.Connection:
    """An autocommit connection with the durability settings the service relies on."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")  # a commit is on disk before the client hears of it
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class JobStore:
    """The job table, safe to use from the request threads and the worker threads at once."""

    def __init__(self, db: str | Path, uploads: str | Path | None = None):
        self.db = Path(db)
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.uploads = Path(uploads) if uploads is not None else self.db.parent / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self._lock_fh = self._take_lock()
        try:
            self._conn = connect(self.db)
            migrate(self._conn)
        except sqlite3.DatabaseError as err:
            self._release_lock()
            raise ServeError(f"cannot open the job database: {err}", self.db) from None
        except BaseException:
            self._release_lock()
            raise
        self._mutex = threading.Lock()

    # -- ownership --------------------------------------------------------------------
    def _take_lock(self):
        lock_path = self.db.with_name(self.db.name + ".lock")
        fh = open(lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            other = fh.read().strip() or "?"
            fh.close()
            raise ServeError(f"the job database is in use by another avdetect serve (pid {other})", self.db) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        return fh

    def _release_lock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
        self._release_lock()

    # -- helpers ----------------------------------------------------------------------
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._mutex:
            return self._conn.execute(sql, args).fetchall()

    def _transaction(self, fn):
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._conn)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return out

    @staticmethod
    def _job(row: tuple) -> Job:
        return Job(*row)

    def schema_version(self) -> int:
        with self._mutex:
            return _schema_version(self._conn)

    # -- the queue ------------------------------------------------------------------------
    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def upload_dir(self, job_id: str) -> Path:
        return self.uploads / job_id

    def add(self, job_id: str, source: str, name: str, path: str | Path, size_bytes: int,
            duration_s: float | None) -> Job:
        """Accept a job (committed to disk when this returns)."""
        now = time.time()

        def insert(conn):
            conn.execute("INSERT INTO jobs (id, state, source, name, path, size_bytes, duration_s, submitted_s) "
                         "VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)",
                         (job_id, source, name, str(path), int(size_bytes), duration_s, now))
        self._transaction(insert)
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        rows = self._query(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def list(self, state: str | None = None, limit: int = 50) -> list[Job]:
        if state is None:
            rows = self._query(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = self._query(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = ? ORDER BY seq DESC LIMIT ?", (state, limit))
        return [self._job(r) for r in rows]

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job to run; None when the job is not queued."""
        rows = self._query("SELECT count(*) FROM jobs WHERE state = 'queued' AND seq <= "
                           "(SELECT seq FROM jobs WHERE id = ? AND state = 'queued')", (job_id,))
        n = int(rows[0][0]) if rows else 0
        return n or None

    def claim(self) -> Job | None:
        """The oldest queued job, now marked running (atomic: two workers never get the same one)."""
        now = time.time()

        def take(conn):
            return conn.execute(
                "UPDATE jobs SET state = 'running', started_s = ?, finished_s = NULL, attempts = attempts + 1 "
                "WHERE seq = (SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1) "
                f"RETURNING {_JOB_COLUMNS}", (now,)).fetchall()
        rows = self._transaction(take)
        return self._job(rows[0]) if rows else None

    def finish(self, job_id: str, report: dict, html: str) -> bool:
        """Store the report and mark the job done, in one transaction. False when the job was no
        longer running (then nothing is written)."""
        now = time.time()
        stages = {k: float(v) for k, v in report.get("provenance", {}).get("stage_seconds", {}).items()}
        text = json.dumps(report, ensure_ascii=False, allow_nan=False)

        def done(conn):
            cur = conn.execute("UPDATE jobs SET state = 'done', finished_s = ?, report_json = ?, report_html = ?, "
                               "error_type = NULL, error = NULL WHERE id = ? AND state = 'running'",
                               (now, text, html, job_id))
            if cur.rowcount != 1:
                return False
            conn.executemany("INSERT OR REPLACE INTO stage_seconds (job_id, stage, seconds) VALUES (?, ?, ?)",
                             [(job_id, k, v) for k, v in stages.items()])
            return True
        return self._transaction(done)

    def fail(self, job_id: str, error_type: str, error: str) -> bool:
        now = time.time()

        def failed(conn):
            cur = conn.execute("UPDATE jobs SET state = 'failed', finished_s = ?, error_type = ?, error = ? "
                               "WHERE id = ? AND state = 'running'", (now, error_type, error, job_id))
            return cur.rowcount == 1
        return self._transaction(failed)

    def requeue(self, job_id: str) -> bool:
        """Put a running job back in the queue (a clean shutdown interrupted it)."""
        def back(conn):
            cur = conn.execute("UPDATE jobs SET state = 'queued', started_s = NULL WHERE id = ? AND state = 'running'",
                               (job_id,))
            return cur.rowcount == 1
        return self._transaction(back)

    def recover(self, max_interruptions: int = 3) -> tuple[list[str], list[str]]:
        """After a crash: jobs left ``running`` go back to the queue, or fail for good once the
        service has died ``max_interruptions`` times while running them. Returns (requeued, failed) ids."""
        now = time.time()

        def fix(conn):
            requeued, failed = [], []
            for job_id, n, name in conn.execute(
                    "SELECT id, interruptions, name FROM jobs WHERE state = 'running' ORDER BY seq").fetchall():
                n += 1
                if n >= max_interruptions:
                    conn.execute("UPDATE jobs SET state = 'failed', interruptions = ?, finished_s = ?, "
                                 "error_type = 'ServiceInterrupted', error = ? WHERE id = ?",
                                 (n, now, f"{name}: the service stopped {n} times while detecting this file; "
                                  "not retried (it may crash the detector)", job_id))
                    failed.append(job_id)
                else:
                    conn.execute("UPDATE jobs SET state = 'queued', interruptions = ?, started_s = NULL WHERE id = ?",
                                 (n, job_id))
                    requeued.append(job_id)
            return requeued, failed
        requeued, failed = self._transaction(fix)
        for job_id in requeued:
            log.warning("job %s was running when the service stopped: queued again", job_id)
        for job_id in failed:
            log.error("job %s was running at %d service stops: failed for good", job_id, max_interruptions)
        return requeued, failed

    # -- results --------------------------------------------------------------------------
    def report_json(self, job_id: str) -> str | None:
        rows = self._query("SELECT report_json FROM jobs WHERE id = ? AND state = 'done'", (job_id,))
        return rows[0][0] if rows else None

    def report_html(self, job_id: str) -> str | None:
        rows = self._query("SELECT report_html FROM jobs WHERE id = ? AND state = 'done'", (job_id,))
        return rows[0][0] if rows else None

    # -- metrics ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for state, n in self._query("SELECT state, count(*) FROM jobs GROUP BY state"):
            out[state] = int(n)
        return out

    def stage_summary(self) -> dict[str, tuple[int, float]]:
        """``{stage: (jobs, total seconds)}`` over every finished job."""
        return {stage: (int(n), float(s)) for stage, n, s in
                self._query("SELECT stage, count(*), sum(seconds) FROM stage_seconds GROUP BY stage ORDER BY stage")}

    def job_seconds(self) -> dict[str, tuple[int, float]]:
        """``{"wait"|"run": (jobs, total seconds)}`` over finished jobs (done or failed)."""
        rows = self._query("SELECT count(*), coalesce(sum(started_s - submitted_s), 0), "
                           "coalesce(sum(finished_s - started_s), 0) FROM jobs WHERE state IN ('done', 'failed') "
                           "AND started_s IS NOT NULL AND finished_s IS NOT NULL")
        n, wait, run = rows[0]
        return {"wait": (int(n), float(wait)), "run": (int(n), float(run))}

    # -- uploaded files ---------------------------------------------------------------------
    def tidy_uploads(self, keep_finished: bool = False) -> int:
        """Remove upload folders of no job (a kill between saving and accepting) and, unless
        ``keep_finished``, those of finished jobs. Returns the number removed."""
        import shutil

        live = {job_id for (job_id,) in self._query(
            "SELECT id FROM jobs WHERE source = 'upload' AND state IN ('queued', 'running')")}
        known = {job_id for (job_id,) in self._query("SELECT id FROM jobs WHERE source = 'upload'")}
        removed = 0
        for d in self.uploads.iterdir():
            if not d.is_dir() or d.name in live or (keep_finished and d.name in known):
                continue
            shutil.rmtree(d)
            removed += 1
        return removed
