"""Syncing task-definition revisions: list every status 100 at a time, describe only what the cache lacks.

Listing and describing overlap: each listed page's unseen revisions join a backlog that a pool of workers drains
(a few ARNs in flight at a time, so memory does not grow with the listing), and all of them share the
task-definition-read bucket of a :class:`~opskit.library.pacing.Pacer`, so the sync runs at the rate the
endpoint allows, which the pacer finds out from AWS's published rate up within the first second or so. Described
revisions are written as they arrive, so an interrupted sync keeps its work and the next one resumes where it
stopped. Statuses are listed in the order revisions move through them (ACTIVE, INACTIVE, DELETE_IN_PROGRESS), so
one that moves during the listing is seen at least once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from opskit.aws import Aws
from opskit.errors import AwsError
from opskit.library.pacing import TASK_DEFINITION_READ, Pacer
from opskit.library.rows import revision_rows
from opskit.library.store import STATUS_ORDER, Store
from opskit.records import REVISION_STATUSES

Progress = Callable[[int, int], None]
PAGE_SIZE = 100
WRITE_BATCH = 200


@dataclass(frozen=True)
class RevisionSync:
    """What a revision sync did."""

    listed: int  # revisions the listings showed
    described: int  # DescribeTaskDefinition calls that returned a revision
    status_changes: int  # cached revisions whose status moved (from the listings)
    removed: int  # cached revisions no listing shows any more (deleted for good)
    list_pages: int
    seconds: float


def list_pages(aws: Aws, pacer: Pacer, status: str, family: str | None) -> Iterator[list[str]]:
    """Pages of task-definition ARNs of one status (and family), 100 at a time, oldest first."""
    ecs = aws.client("ecs")
    params: dict[str, Any] = {"status": status, "maxResults": PAGE_SIZE, "sort": "ASC"}
    if family:
        params["familyPrefix"] = family  # an exact family name for this API
    while True:
        page = pacer.call(TASK_DEFINITION_READ, ecs.list_task_definitions, **params)
        yield list(page.get("taskDefinitionArns") or [])
        if not page.get("nextToken"):
            return
        params["nextToken"] = page["nextToken"]


def describe(aws: Aws, pacer: Pacer, arn: str) -> dict[str, Any] | None:
    """The DescribeTaskDefinition answer with tags, every field kept (even ones botocore does not model yet);
    None when the revision was deleted since it was listed."""
    try:
        return pacer.call(
            TASK_DEFINITION_READ,
            aws.call_json,
            "ecs",
            "DescribeTaskDefinition",
            {"taskDefinition": arn, "include": ["TAGS"]},
        )
    except AwsError as exc:
        if exc.code == "ClientException":
            return None  # "Unable to describe task definition": deleted in between
        raise


def sync_revisions(
    aws: Aws,
    store: Store,
    pacer: Pacer,
    *,
    families: Sequence[str] | None = None,
    refresh: bool = False,
    workers: int = 8,
    progress: Progress | None = None,
) -> RevisionSync:
    """Bring the cache up to date with every revision of ``families`` (all families when None)."""
    started = time.monotonic()
    known = {} if refresh else store.revision_statuses(families)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    listed: dict[str, str] = {}
    # ARNs listed and not yet handed to a describer: the listing runs ahead of the describes, and a queue of
    # plain ARNs (already held by ``listed``) stays small where one of queued futures would not.
    backlog: deque[str] = deque()
    in_flight = 2 * max(1, workers)
    batch: list[Any] = []
    counts = {"pages": 0, "described": 0, "done": 0, "total": 0, "pending": 0}

    def lister(family: str | None) -> None:
        try:
            for status in REVISION_STATUSES:
                for arns in list_pages(aws, pacer, status, family):
                    if stop.is_set():
                        return
                    events.put(("page", (status, arns)))
            events.put(("listed", family))
        except BaseException as exc:
            events.put(("error", exc))

    def describer(arn: str) -> None:
        try:
            if not stop.is_set():
                events.put(("described", (arn, describe(aws, pacer, arn))))
        except BaseException as exc:
            events.put(("error", exc))

    scopes: list[str | None] = list(families) if families else [None]
    listing = ThreadPoolExecutor(min(4, len(scopes)), thread_name_prefix="opskit-list")
    describing = ThreadPoolExecutor(max(1, workers), thread_name_prefix="opskit-describe")
    listers_left = len(scopes)
    try:
        for scope in scopes:
            listing.submit(lister, scope)
        while True:
            while backlog and counts["pending"] < in_flight:
                counts["pending"] += 1
                describing.submit(describer, backlog.popleft())
            if not (listers_left or counts["pending"]):
                break
            kind, payload = events.get()
            if kind == "error":
                raise payload
            if kind == "listed":
                listers_left -= 1
            elif kind == "page":
                status, arns = payload
                counts["pages"] += 1
                for arn in arns:
                    before = listed.get(arn)
                    if before is None or STATUS_ORDER[status] > STATUS_ORDER[before]:
                        listed[arn] = status
                    if before is None and arn not in known:  # seen for the first time, and not cached
                        backlog.append(arn)
                        counts["total"] += 1
                if progress:
                    progress(counts["done"], counts["total"])
            elif kind == "described":
                arn, answer = payload
                counts["pending"] -= 1
                counts["done"] += 1
                if answer is not None:
                    counts["described"] += 1
                    batch.append(revision_rows(answer))
                    if len(batch) >= WRITE_BATCH:
                        store.put_revisions(batch)
                        batch.clear()
                if progress:
                    progress(counts["done"], counts["total"])
        store.put_revisions(batch)
        batch.clear()
        changed, removed = store.apply_listing(listed, families)
    finally:
        stop.set()
        if batch:  # keep what was described before the failure: the next sync resumes from there
            store.put_revisions(batch)
        listing.shutdown(wait=True, cancel_futures=True)
        describing.shutdown(wait=True, cancel_futures=True)
    return RevisionSync(
        listed=len(listed),
        described=counts["described"],
        status_changes=changed,
        removed=removed,
        list_pages=counts["pages"],
        seconds=time.monotonic() - started,
    )


__all__ = ["RevisionSync", "describe", "list_pages", "sync_revisions"]
