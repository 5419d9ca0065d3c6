"""ECS tasks in the sandbox, the API side: ListTasks, DescribeTasks, StopTask.

The tasks themselves are the scheduler's records (:mod:`opskit.sandbox.ecs.task_lifecycle`): what these answer
is always what the deployments count.

>>> arns = ecs.list_tasks(cluster="prod", serviceName="web", desiredStatus="STOPPED")["taskArns"]   # doctest: +SKIP
>>> ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"][0]["stoppedReason"]                      # doctest: +SKIP
'CannotPullContainerError: pull image manifest has been retried 5 time(s): ...'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opskit.sandbox.ecs.records import RUNNING, STOPPED, Service, Task
from opskit.sandbox.ecs.scheduler import Scheduler
from opskit.sandbox.server.paging import paginate
from opskit.sandbox.server.wire import ApiError, ApiRequest, Handler, invalid_parameter


class TaskApi:
    def __init__(
        self,
        scheduler: Scheduler,
        cluster: Callable[[Any], str],
        find: Callable[[str, Any], Service | None],
    ) -> None:
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.region = scheduler.region
        self.account_id = scheduler.account_id
        self._cluster = cluster
        self._find = find

    def handlers(self) -> dict[str, Handler]:
        return {"ListTasks": self._list_tasks, "DescribeTasks": self._describe_tasks, "StopTask": self._stop_task}

    def _list_tasks(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        desired = params.get("desiredStatus") or RUNNING
        if desired not in (RUNNING, STOPPED, "PENDING"):
            raise invalid_parameter("desiredStatus must be one of RUNNING, PENDING, STOPPED.")
        started_by, family = params.get("startedBy"), params.get("family")
        launch_type = params.get("launchType")
        with self.scheduler.lock:
            service = None
            if params.get("serviceName"):
                service = self._find(cluster_arn, params["serviceName"])
                if service is None:
                    raise ApiError("ServiceNotFoundException", "Service not found.")
            arns = sorted(
                t.arn
                for t in self.scheduler.tasks.values()
                if t.service.cluster_arn == cluster_arn
                and t.desired_status == desired
                and (service is None or t.service is service)
                and (not started_by or t.deployment.id == started_by)
                and (not family or t.revision.family == family)
                and (not launch_type or t.service.launch_type == launch_type)
                and not params.get("containerInstance")  # tasks run on no container instance here
            )
        page, token = paginate(
            arns,
            key=lambda arn: arn,
            max_results=params.get("maxResults"),
            next_token=params.get("nextToken"),
            default=100,
            limit=100,
            query=f"list-tasks:{cluster_arn}:{desired}:{params.get('serviceName')}:{started_by}:{family}",
        )
        return {"taskArns": page, **({"nextToken": token} if token else {})}

    def _describe_tasks(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        references = params.get("tasks")
        if not isinstance(references, list) or not references or len(references) > 100:
            raise invalid_parameter("tasks must list between 1 and 100 task IDs or ARNs.")
        include_tags = "TAGS" in (params.get("include") or [])
        found, failures = [], []
        with self.scheduler.lock:
            for reference in references:
                task = self._task(cluster_arn, reference)
                if task is None:
                    failures.append({"arn": self._task_arn(cluster_arn, reference), "reason": "MISSING"})
                else:
                    found.append(task.describe(self.region, include_tags))
        return {"tasks": found, "failures": failures}

    def _stop_task(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        reason = params.get("reason") or "Task stopped by user"
        with self.scheduler.lock:
            task = self._task(cluster_arn, params.get("task"))
            if task is None:
                raise invalid_parameter("The referenced task was not found.")
            self.scheduler.stop_task(task, self.clock.timestamp(), str(reason)[:255])
            return {"task": task.describe(self.region)}

    def _task(self, cluster_arn: str, reference: Any) -> Task | None:
        if not isinstance(reference, str) or not reference:
            raise invalid_parameter("task must be a task ID or ARN.")
        task = self.scheduler.tasks.get(reference.rsplit("/", 1)[-1])
        return task if task is not None and task.service.cluster_arn == cluster_arn else None

    def _task_arn(self, cluster_arn: str, reference: Any) -> str:
        if isinstance(reference, str) and reference.startswith("arn:"):
            return reference
        return f"arn:aws:ecs:{self.region}:{self.account_id}:task/{cluster_arn.rsplit('/', 1)[-1]}/{reference}"
