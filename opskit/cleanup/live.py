"""What is in use right now: every service's current deployments and every task ECS wants running.

The plan reads this once; the apply reads it again right before each action, so a service that moved to an old
revision since the plan (or a task started from one) protects it. Reads are paced (DescribeServices and
ListServices share the service-read bucket); a task's revision never changes, so each task is described once.

>>> live = LiveState(aws, pacer)                                        # doctest: +SKIP
>>> now = live.read()  # doctest: +SKIP
>>> now.in_use.reason("web:3")  # doctest: +SKIP
'used by prod/web (PRIMARY)'
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opskit.aws import Aws
from opskit.cleanup.revisions import InUse, in_use, revision_key
from opskit.errors import AwsError
from opskit.library.pacing import SERVICE_READ, Pacer
from opskit.library.rollback import from_service
from opskit.library.rows import service_record
from opskit.lock import release_holder
from opskit.records import ServiceRecord, TaskRecord

DESCRIBE_SERVICES_BATCH = 10
DESCRIBE_TASKS_BATCH = 100
STARTING = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})


@dataclass(frozen=True)
class Snapshot:
    services: tuple[ServiceRecord, ...]
    tasks: tuple[TaskRecord, ...]
    in_use: InUse
    releasing: dict[str, str] = field(default_factory=dict)  # family -> "<service> is being released by <holder>"

    @property
    def digests(self) -> set[str]:
        """Image digests the wanted tasks' containers pulled."""
        return {digest for task in self.tasks for digest in task.image_digests}

    @property
    def revisions(self) -> set[str]:
        """Revisions (ARNs) the services and tasks use now."""
        out = {t.task_definition for t in self.tasks}
        for service in self.services:
            out.update(d.task_definition for d in service.deployments if d.task_definition)
            if service.task_definition:
                out.add(service.task_definition)
        return out


class LiveState:
    """Reads services and tasks now, across every cluster; safe to call from one thread at a time."""

    def __init__(self, aws: Aws, pacer: Pacer) -> None:
        self.ecs = aws.client("ecs")
        self.pacer = pacer
        self.reads = 0  # how many times the state was read
        self._tasks: dict[str, TaskRecord] = {}  # by task ARN: a task's revision never changes
        self._lock = threading.Lock()

    def read(self) -> Snapshot:
        with self._lock:
            self.reads += 1
            services: list[ServiceRecord] = []
            tasks: list[TaskRecord] = []
            releasing: dict[str, str] = {}
            for cluster_arn in self._pages(None, self.ecs.list_clusters, "clusterArns"):
                cluster = cluster_arn.rsplit("/", 1)[-1]
                services.extend(self._services(cluster_arn, cluster, releasing))
                tasks.extend(self._running_tasks(cluster_arn, cluster))
            listed = {t.arn for t in tasks}
            self._tasks = {arn: task for arn, task in self._tasks.items() if arn in listed}  # stopped ones go
            return Snapshot(tuple(services), tuple(tasks), in_use(services, (), tasks), releasing)

    def tasks(self) -> list[TaskRecord]:
        return list(self.read().tasks)

    def _services(self, cluster_arn: str, cluster: str, releasing: dict[str, str]) -> list[ServiceRecord]:
        """The cluster's services; a service under a release lock puts its family in ``releasing``: a release may
        be registering a revision there or about to deploy one, so the cleanup leaves the family alone."""
        arns = list(self._pages(SERVICE_READ, self.ecs.list_services, "serviceArns", cluster=cluster_arn))
        out = []
        for start in range(0, len(arns), DESCRIBE_SERVICES_BATCH):
            answer = self.pacer.call(
                SERVICE_READ,
                self.ecs.describe_services,
                cluster=cluster_arn,
                services=arns[start : start + DESCRIBE_SERVICES_BATCH],
                include=["TAGS"],
            )
            for body in answer.get("services") or []:
                record = service_record(body, cluster, from_service(body, cluster))
                out.append(record)
                holder = release_holder(body.get("tags") or [])
                if holder:
                    used = (record.task_definition, *(d.task_definition for d in record.deployments))
                    for family in {revision_key(arn).split(":")[0] for arn in used if arn}:
                        releasing[family] = f"{cluster}/{record.service} is being released by {holder}"
        return out

    def _running_tasks(self, cluster_arn: str, cluster: str) -> list[TaskRecord]:
        arns = list(self._pages(None, self.ecs.list_tasks, "taskArns", cluster=cluster_arn, desiredStatus="RUNNING"))
        # Described again while they start: image digests appear once the images are pulled.
        unseen = [arn for arn in arns if arn not in self._tasks or self._tasks[arn].last_status in STARTING]
        for start in range(0, len(unseen), DESCRIBE_TASKS_BATCH):
            answer = self.pacer.call(
                None, self.ecs.describe_tasks, cluster=cluster_arn, tasks=unseen[start : start + DESCRIBE_TASKS_BATCH]
            )
            for body in answer.get("tasks") or []:
                self._tasks[body["taskArn"]] = TaskRecord.from_api(body, cluster)
        # Listed as wanted RUNNING now, whatever the description said then.
        return [_wanted(self._tasks[arn]) for arn in arns if arn in self._tasks]

    def _pages(self, category: str | None, call: Any, key: str, **params: Any) -> Iterator[Any]:
        params.setdefault("maxResults", 100)
        while True:
            try:
                page = self.pacer.call(category, call, **params)
            except AwsError as exc:
                if exc.code == "ClusterNotFoundException":
                    return  # deleted since it was listed: nothing runs there
                raise
            yield from page.get(key) or []
            if not page.get("nextToken"):
                return
            params["nextToken"] = page["nextToken"]


def _wanted(task: TaskRecord) -> TaskRecord:
    if task.desired_status == "RUNNING":
        return task
    from dataclasses import replace

    return replace(task, desired_status="RUNNING")


__all__ = ["LiveState", "Snapshot"]
