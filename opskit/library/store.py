"""The library's cache: one SQLite file per account, region and endpoint.

Revisions never change once registered (only their status moves), so their bodies are kept for good and a
re-sync describes only what it has not seen. The flat columns the DataFrames need are kept as SQL columns, so a
frame is one SELECT; the full body is a compressed JSON blob read only on request. Images and services change,
and are replaced on each sync of theirs.

A file that is not a readable SQLite database, was written by another schema version, or belongs to another
account, region or endpoint (two sandboxes, or a sandbox and AWS, must never share one) is never trusted: it is
set aside and rebuilt empty, with a :class:`CacheWarning`.

>>> store = Store(":memory:", CacheIdentity("123456789012", "us-east-1", ""))
>>> store.revision_statuses(None)
{}
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.library.rows import (
    CONTAINER_FIELDS,
    DEPLOYMENT_FIELDS,
    REPOSITORY_FIELDS,
    REVISION_FIELDS,
    ROLLOUT_FIELDS,
    SERVICE_FIELDS,
)

# 2: repositories keep exclusion filters, scan frequency, lifecycle policy; 3: services keep how they deploy
# (strategy, bake times, lifecycle hooks, alarms). An older file fails the check of its tables and is rebuilt.
SCHEMA_VERSION = "3"
STATUS_ORDER = {"ACTIVE": 0, "INACTIVE": 1, "DELETE_IN_PROGRESS": 2}

SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Clustered on (family, revision): a frame is one sequential scan in order. Bodies live apart, so these rows
    # stay small and dense.
    "CREATE TABLE revisions (family TEXT NOT NULL, revision INTEGER NOT NULL, arn TEXT NOT NULL,"
    " status TEXT NOT NULL, registered_at INTEGER, registered_by TEXT, deregistered_at INTEGER,"
    " delete_requested_at INTEGER, cpu TEXT, memory TEXT, network_mode TEXT, compatibilities TEXT,"
    " container_count INTEGER, commit_sha TEXT, tags TEXT NOT NULL, PRIMARY KEY (family, revision)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX revisions_by_arn ON revisions (arn)",
    "CREATE TABLE bodies (arn TEXT PRIMARY KEY, body BLOB NOT NULL)",
    "CREATE TABLE containers (family TEXT NOT NULL, revision INTEGER NOT NULL, position INTEGER NOT NULL,"
    " arn TEXT NOT NULL, status TEXT NOT NULL, name TEXT, image TEXT, registry TEXT, repository TEXT, tag TEXT,"
    " digest TEXT, commit_sha TEXT, uses_latest INTEGER, untagged INTEGER, essential INTEGER,"
    " environment_names TEXT, secret_names TEXT, PRIMARY KEY (family, revision, position)) WITHOUT ROWID",
    "CREATE INDEX containers_by_arn ON containers (arn)",
    "CREATE TABLE repositories (name TEXT PRIMARY KEY, registry_id TEXT, uri TEXT, arn TEXT, mutability TEXT,"
    " scan_on_push INTEGER, created_at INTEGER, exclusion_filters TEXT, scan_frequency TEXT, lifecycle_policy TEXT)",
    "CREATE TABLE images (repository TEXT NOT NULL, digest TEXT NOT NULL, registry_id TEXT, tags TEXT,"
    " pushed_at INTEGER, size_bytes INTEGER, scan_status TEXT, scan_completed_at INTEGER, media_type TEXT,"
    " last_pulled_at INTEGER, PRIMARY KEY (repository, digest))",
    "CREATE TABLE services (arn TEXT PRIMARY KEY, cluster TEXT, service TEXT, status TEXT, desired_count INTEGER,"
    " running_count INTEGER, pending_count INTEGER, task_definition TEXT, launch_type TEXT,"
    " circuit_breaker INTEGER, circuit_breaker_rollback INTEGER, deployments TEXT, rollback_target TEXT,"
    " created_at INTEGER, history_source TEXT, strategy TEXT, bake_time_minutes INTEGER,"
    " step_bake_time_minutes INTEGER, canary_bake_time_minutes INTEGER, lifecycle_hooks TEXT, alarm_names TEXT,"
    " alarms_enabled INTEGER, alarms_rollback INTEGER)",
    "CREATE TABLE deployments (cluster TEXT NOT NULL, service TEXT NOT NULL, deployment TEXT NOT NULL,"
    " task_definition TEXT, status TEXT, rollout_state TEXT, created_at INTEGER, finished_at INTEGER,"
    " rolled_back INTEGER, source TEXT, PRIMARY KEY (cluster, service, deployment))",
    "CREATE TABLE service_revisions (arn TEXT PRIMARY KEY, task_definition TEXT NOT NULL)",
)


class CacheWarning(UserWarning):
    """The cache could not be trusted and was rebuilt empty; the next sync fills it again."""


@dataclass(frozen=True)
class CacheIdentity:
    """Whose cache this is. ``endpoint`` is "" for AWS itself, else the endpoint URL (the sandbox's)."""

    account: str
    region: str
    endpoint: str = ""

    @property
    def file_name(self) -> str:
        where = "aws" if not self.endpoint else "endpoint-" + hashlib.sha256(self.endpoint.encode()).hexdigest()[:12]
        return f"{self.account}-{self.region}-{where}.sqlite"

    def as_meta(self) -> dict[str, str]:
        return {"schema": SCHEMA_VERSION, "account": self.account, "region": self.region, "endpoint": self.endpoint}


def default_cache_dir() -> Path:
    """``$OPSKIT_CACHE_DIR``, else the user cache directory (``~/.cache/opskit/library`` on Linux)."""
    configured = os.environ.get("OPSKIT_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("opskit", appauthor=False)) / "library"


class Store:
    """The SQLite cache of one account, region and endpoint; safe to share between threads (one lock)."""

    def __init__(self, path: str | Path, identity: CacheIdentity) -> None:
        self.path = path if path == ":memory:" else Path(path)
        self.identity = identity
        self._lock = threading.RLock()
        self._conn = self._open()

    # -- opening, checking, rebuilding -------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            return self._create(sqlite3.connect(":memory:", check_same_thread=False))
        assert isinstance(self.path, Path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.path.exists():
            problem: str | None
            conn: sqlite3.Connection | None = None
            try:
                conn = self._connect()
                problem = self._problem(conn)
            except sqlite3.DatabaseError as exc:
                problem = f"it is not a readable SQLite database ({exc})"
            if problem is None and conn is not None:
                return conn
            if conn is not None:
                conn.close()
            self._set_aside(problem or "unknown problem")
        return self._create(self._connect())

    def _connect(self) -> sqlite3.Connection:
        # The cache keeps bodies unmasked (environment values included): readable by its owner only. SQLite gives
        # its -wal and -shm files the database file's permissions.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _problem(self, conn: sqlite3.Connection) -> str | None:
        tables = {row[0] for row in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")}
        if tables != set(SCHEMA):
            return "its tables are not this version's"
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        expected = self.identity.as_meta()
        for key, value in expected.items():
            if meta.get(key) != value:
                return f"it belongs to {key} {meta.get(key)!r}, not {value!r}"
        return None

    def _set_aside(self, problem: str) -> None:
        assert isinstance(self.path, Path)
        warnings.warn(
            f"opskit cache {self.path} cannot be trusted: {problem}; rebuilt it empty (the next sync fills it)",
            CacheWarning,
            stacklevel=4,
        )
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _create(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        with conn:
            for statement in SCHEMA:
                conn.execute(statement)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", self.identity.as_meta().items())
        return conn

    def rebuild(self, problem: str) -> None:
        """Drop everything (the cache was found corrupt while in use) and start empty, with a warning."""
        with self._lock:
            self._conn.close()
            if self.path == ":memory:":
                self._conn = self._create(sqlite3.connect(":memory:", check_same_thread=False))
                return
            self._set_aside(problem)
            self._conn = self._create(self._connect())

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- reading -----------------------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def revision_statuses(self, families: Sequence[str] | None) -> dict[str, str]:
        sql, params = "SELECT arn, status FROM revisions", list(families or [])
        if families:
            sql += f" WHERE family IN ({','.join('?' * len(params))})"
        return {str(arn): str(status) for arn, status in self.query(sql, params)}

    def body(self, arn: str) -> tuple[bytes, str] | None:
        rows = self.query(
            "SELECT b.body, r.status FROM bodies b JOIN revisions r ON r.arn = b.arn WHERE b.arn = ?", (arn,)
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def arn_of(self, family: str, revision: int) -> str | None:
        rows = self.query("SELECT arn FROM revisions WHERE family = ? AND revision = ?", (family, revision))
        return str(rows[0][0]) if rows else None

    def service_revisions(self, arns: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(arns))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            sql = f"SELECT arn, task_definition FROM service_revisions WHERE arn IN ({','.join('?' * len(chunk))})"
            found.update((str(arn), str(task_definition)) for arn, task_definition in self.query(sql, chunk))
        return found

    def rollouts(self) -> dict[str, tuple[Any, ...]]:
        """How each service deploys (its :data:`~opskit.library.rows.ROLLOUT_FIELDS`), by service ARN."""
        rows = self.query(f"SELECT arn, {', '.join(ROLLOUT_FIELDS)} FROM services")
        return {str(row[0]): tuple(row[1:]) for row in rows}

    def history(self, cluster: str, service: str) -> list[tuple[Any, ...]]:
        return self.query(
            f"SELECT {', '.join(DEPLOYMENT_FIELDS)} FROM deployments WHERE cluster = ? AND service = ?",
            (cluster, service),
        )

    # -- writing -----------------------------------------------------------------------------------------------
    def put_revisions(self, rows: Sequence[tuple[tuple[Any, ...], bytes, list[tuple[Any, ...]]]]) -> None:
        """Store described revisions (a revisions row, its body, its containers rows), replacing older copies."""
        if not rows:
            return
        arns = [(revision[0],) for revision, _, _ in rows]  # REVISION_FIELDS start with the ARN
        with self._lock, self._conn:
            self._conn.executemany("DELETE FROM revisions WHERE arn = ?", arns)
            self._conn.executemany("DELETE FROM containers WHERE arn = ?", arns)
            self._conn.executemany(
                f"INSERT OR REPLACE INTO revisions ({', '.join(REVISION_FIELDS)})"
                f" VALUES ({', '.join('?' * len(REVISION_FIELDS))})",
                [revision for revision, _, _ in rows],
            )
            self._conn.executemany(
                "INSERT OR REPLACE INTO bodies VALUES (?, ?)", [(revision[0], blob) for revision, blob, _ in rows]
            )
            self._conn.executemany(
                f"INSERT OR REPLACE INTO containers ({', '.join(CONTAINER_FIELDS)})"
                f" VALUES ({', '.join('?' * len(CONTAINER_FIELDS))})",
                [container for _, _, containers in rows for container in containers],
            )

    def apply_listing(self, listed: dict[str, str], families: Sequence[str] | None) -> tuple[int, int]:
        """Make the cache agree with complete listings of ``families`` (all when None): statuses move as listed
        (never backwards), and revisions no listing shows any more are gone. Returns (status changes, removed)."""
        cached = self.revision_statuses(families)
        changes = [
            (status, arn)
            for arn, status in listed.items()
            if arn in cached and STATUS_ORDER.get(status, 0) > STATUS_ORDER.get(cached[arn], 0)
        ]
        gone = [(arn,) for arn in cached if arn not in listed]
        with self._lock, self._conn:
            self._conn.executemany("UPDATE revisions SET status = ? WHERE arn = ?", changes)
            self._conn.executemany("UPDATE containers SET status = ? WHERE arn = ?", changes)
            for table in ("revisions", "bodies", "containers"):
                self._conn.executemany(f"DELETE FROM {table} WHERE arn = ?", gone)
        return len(changes), len(gone)

    def replace_images(self, repositories: list[tuple[Any, ...]], images: list[tuple[Any, ...]]) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM repositories")
            self._conn.execute("DELETE FROM images")
            self._conn.executemany(
                f"INSERT OR REPLACE INTO repositories VALUES ({', '.join('?' * len(REPOSITORY_FIELDS))})", repositories
            )
            self._conn.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", images)

    def put_service_revisions(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO service_revisions VALUES (?, ?)", list(pairs))

    def replace_services(
        self, services: list[tuple[Any, ...]], histories: dict[tuple[str, str], list[tuple[Any, ...]]]
    ) -> None:
        """The services as they are now, and the full history of each of them (older services' history stays)."""
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM services")
            self._conn.executemany(
                f"INSERT OR REPLACE INTO services ({', '.join(SERVICE_FIELDS)})"
                f" VALUES ({', '.join('?' * len(SERVICE_FIELDS))})",
                services,
            )
            for (cluster, service), rows in histories.items():
                self._conn.execute("DELETE FROM deployments WHERE cluster = ? AND service = ?", (cluster, service))
                self._conn.executemany(
                    f"INSERT OR REPLACE INTO deployments VALUES ({', '.join('?' * len(DEPLOYMENT_FIELDS))})", rows
                )


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


__all__ = ["SCHEMA_VERSION", "CacheIdentity", "CacheWarning", "Store", "default_cache_dir"]
