"""Cleanup runs on disk: each apply's journal, so an interrupted run resumes instead of starting over.

A run's journal (``$OPSKIT_STATE_DIR/journal/cleanup/<where>/<started>-<key>.jsonl``) starts with the whole plan,
then gets one entry per API action, written (and fsynced) only after AWS answered: it never claims what did not
happen. A finished run's journal is renamed ``*.jsonl.done``. Planning again with the same options finds an
unfinished run and resumes its plan (an uninterrupted run would have done exactly that plan, no more).
One cleanup runs at a time per account, region and endpoint (a lock file; the OS releases it if the process dies).

>>> run = unfinished_run(runs_folder(aws), options)                     # doctest: +SKIP
>>> run.plan().resumed.done  # doctest: +SKIP
40
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opskit.aws import Aws
from opskit.cleanup.options import CleanupOptions
from opskit.cleanup.plan import CleanupPlan, Resumed
from opskit.errors import ConflictError
from opskit.journal import Journal, state_dir

DONE_SUFFIX = ".done"


def runs_folder(aws: Aws, journal_dir: Path | None = None) -> Path:
    """Where the runs of one profile, region and endpoint are kept."""
    where = f"{aws.profile or 'default'}-{aws.region}-{aws.custom_endpoint or 'aws'}"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in where)
    return (journal_dir or state_dir()) / "journal" / "cleanup" / safe


class CleanupRun:
    """One apply's journal: the plan it started with, then what each action did."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal = Journal(path)
        self._started: dict[str, Any] | None = None

    @classmethod
    def start(cls, folder: Path, plan: CleanupPlan) -> CleanupRun:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        run = cls(folder / f"{stamp}-{plan.key}.jsonl")
        run.journal.write("started", plan=plan.to_dict(), pid=os.getpid(), host=socket.gethostname())
        return run

    def repair(self) -> None:
        """Cut a torn last line (the process died while writing it) so that what is appended next can be read."""
        good = 0
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                try:
                    json.loads(line)
                except ValueError:
                    break
                good += len(line)
        if good < self.path.stat().st_size:
            with self.path.open("r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
            self._started = None

    # The journal is read from disk each time, never held: its first line is the whole plan, and an apply that
    # kept every entry would hold the plan twice and every outcome twice, growing with the run.
    def entries(self, *events: str) -> list[dict[str, Any]]:
        """The entries (of ``events`` only, when given), in order."""
        return list(self.journal.entries(*events))

    @property
    def started(self) -> dict[str, Any]:
        if self._started is None:
            first = next(self.journal.entries(), None)
            if first is None or first.get("event") != "started":
                raise ConflictError(f"{self.path} is not a cleanup journal: move it out of {self.path.parent}")
            self._started = first
        return self._started

    @property
    def begun(self) -> bool:
        """Does the journal hold a readable first entry?"""
        return self._started is not None or next(self.journal.entries(), None) is not None

    @property
    def finished(self) -> bool:
        return next(self.journal.entries("finished"), None) is not None

    def plan(self) -> CleanupPlan:
        started = self.started
        done = sum(len(e.get("outcomes") or ()) for e in self.journal.entries("revisions", "images"))
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(started.get("at", 0))))
        return CleanupPlan.from_dict(started["plan"], Resumed(str(self.path), when, done))

    def outcomes(self, kind: str) -> list[dict[str, Any]]:
        """Every outcome recorded for ``kind`` ("revisions" or "images"), in order."""
        return [o for e in self.journal.entries(kind) for o in e.get("outcomes") or ()]

    def record(self, kind: str, outcomes: list[dict[str, Any]]) -> None:
        """After AWS answered: what one action did to each revision (or image) it touched."""
        self.journal.write(kind, outcomes=outcomes)

    def finish(self, **summary: Any) -> None:
        self.journal.write("finished", **summary)
        self.path.rename(self.path.with_name(self.path.name + DONE_SUFFIX))
        self.path = self.path.with_name(self.path.name + DONE_SUFFIX)


def unfinished_runs(folder: Path) -> list[CleanupRun]:
    """Runs that started and did not finish, oldest first."""
    if not folder.is_dir():
        return []
    runs = [CleanupRun(path) for path in sorted(folder.glob("*.jsonl"))]
    return [run for run in runs if run.begun and not run.finished]


def unfinished_run(folder: Path, options: CleanupOptions) -> CleanupRun | None:
    """The newest unfinished run made with exactly these options, if any."""
    for run in reversed(unfinished_runs(folder)):
        try:
            if CleanupOptions.from_dict(run.started["plan"]["options"]) == options:
                return run
        except (KeyError, TypeError, ValueError):
            continue  # an older journal format or a damaged first line: not ours to resume
    return None


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the block; another process holding it means another cleanup is running."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lock"
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConflictError(
                f"another cleanup is running against this account and region ({holder}): wait for it to finish"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


__all__ = ["CleanupRun", "exclusive", "runs_folder", "unfinished_run", "unfinished_runs"]
