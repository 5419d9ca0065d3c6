"""The revision library: every task-definition revision of an account and region, as records and DataFrames.

>>> library = RevisionLibrary(Aws())                        # doctest: +SKIP
>>> library.sync()
>>> library.revisions().query("status == 'ACTIVE'").groupby("family").size()

Columns of :meth:`RevisionLibrary.revisions` (one row per revision):

=================  ===========================  ==================================================
column             dtype                        meaning
=================  ===========================  ==================================================
family             string                       task-definition family
revision           Int64                        revision number
arn                string                       task-definition ARN
status             category                     ACTIVE, INACTIVE or DELETE_IN_PROGRESS
registered_at      datetime64[ns, UTC]          when it was registered
registered_by      string                       who registered it
deregistered_at    datetime64[ns, UTC]          when it was deregistered (NaT while ACTIVE)
cpu, memory        string                       task size as registered
network_mode       string                       awsvpc, bridge, host or none
compatibilities    string                       launch types it can run on, comma-separated
containers         Int64                        number of container definitions
commit             string                       the ``commit`` tag, or the image tag when it is a SHA
tags               object                       dict of the revision's tags
=================  ===========================  ==================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from opskit.aws import Aws
from opskit.records import RevisionRecord

STATUSES = ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS")
REVISION_COLUMNS = [
    "family",
    "revision",
    "arn",
    "status",
    "registered_at",
    "registered_by",
    "deregistered_at",
    "cpu",
    "memory",
    "network_mode",
    "compatibilities",
    "containers",
    "commit",
    "tags",
]

Progress = Callable[[int, int], None]


class RevisionLibrary:
    """What exists in one account and region, fetched through the AWS boundary."""

    def __init__(self, aws: Aws, *, workers: int = 8) -> None:
        self.aws = aws
        self.workers = workers
        self._revisions: dict[str, RevisionRecord] = {}

    def sync(self, progress: Progress | None = None) -> None:
        """List every revision of every status, then describe each one with its tags."""
        ecs = self.aws.client("ecs")
        paginator = ecs.get_paginator("list_task_definitions")
        arns = [
            arn
            for status in STATUSES
            for page in paginator.paginate(status=status, PaginationConfig={"PageSize": 100})
            for arn in page["taskDefinitionArns"]
        ]

        def describe(arn: str) -> RevisionRecord:
            answer = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
            return RevisionRecord.from_api(answer["taskDefinition"], answer.get("tags"))

        with ThreadPoolExecutor(self.workers) as pool:
            for done, record in enumerate(pool.map(describe, arns), start=1):
                self._revisions[record.arn] = record
                if progress:
                    progress(done, len(arns))

    def records(self) -> Iterable[RevisionRecord]:
        return sorted(self._revisions.values(), key=lambda r: (r.family, r.revision))

    def revisions(self) -> pd.DataFrame:
        rows = [_revision_row(record) for record in self.records()]
        frame = pd.DataFrame(rows, columns=REVISION_COLUMNS)
        for column in (
            "family",
            "arn",
            "registered_by",
            "cpu",
            "memory",
            "network_mode",
            "compatibilities",
            "commit",
        ):
            frame[column] = frame[column].astype("string")
        for column in ("revision", "containers"):
            frame[column] = frame[column].astype("Int64")
        for column in ("registered_at", "deregistered_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["status"] = pd.Categorical(frame["status"], categories=list(STATUSES))
        return frame


def _revision_row(record: RevisionRecord) -> dict[str, Any]:
    tags = dict(record.tags)
    commit = tags.get("commit") or next((c.ref.commit_sha for c in record.containers if c.ref.commit_sha), None)
    return {
        "family": record.family,
        "revision": record.revision,
        "arn": record.arn,
        "status": record.status,
        "registered_at": record.registered_at,
        "registered_by": record.registered_by,
        "deregistered_at": record.deregistered_at,
        "cpu": record.cpu,
        "memory": record.memory,
        "network_mode": record.network_mode,
        "compatibilities": ",".join(record.compatibilities),
        "containers": len(record.containers),
        "commit": commit,
        "tags": tags,
    }
