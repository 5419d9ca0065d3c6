"""The service-deployment APIs: ListServiceDeployments, DescribeServiceDeployments, StopServiceDeployment,
DescribeServiceRevisions (moto has none of them).

Each CreateService / UpdateService that starts a deployment is one service deployment; a circuit-breaker or
requested rollback stays part of the service deployment it rolls back (status ROLLBACK_IN_PROGRESS, then
ROLLBACK_SUCCESSFUL or ROLLBACK_FAILED), as on ECS.

>>> page = ecs.list_service_deployments(cluster="prod", service="web")            # doctest: +SKIP
>>> arn = page["serviceDeployments"][0]["serviceDeploymentArn"]                   # doctest: +SKIP
>>> ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from opskit.sandbox.ecs.records import SD_IN_PROGRESS, SD_STATUSES, Deployment, Service, ServiceDeployment
from opskit.sandbox.ecs.scheduler import Scheduler
from opskit.sandbox.server.paging import paginate
from opskit.sandbox.server.wire import ApiError, ApiRequest, Handler, invalid_parameter

MAX_DESCRIBE = 20


class ServiceDeploymentApi:
    def __init__(
        self,
        scheduler: Scheduler,
        cluster: Callable[[Any], str],
        find: Callable[[str, Any], Service | None],
    ) -> None:
        self.scheduler = scheduler
        self._cluster = cluster
        self._find = find

    def handlers(self) -> dict[str, Handler]:
        return {
            "ListServiceDeployments": self._list,
            "DescribeServiceDeployments": self._describe,
            "StopServiceDeployment": self._stop,
            "ContinueServiceDeployment": self._continue,
            "DescribeServiceRevisions": self._describe_revisions,
        }

    def _list(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        statuses = params.get("status") or []
        if not isinstance(statuses, list) or any(s not in SD_STATUSES for s in statuses):
            raise invalid_parameter(f"status must list values among {', '.join(SD_STATUSES)}.")
        created = params.get("createdAt") or {}
        before, after = _epoch(created.get("before")), _epoch(created.get("after"))
        with self.scheduler.lock:
            service = self._find(cluster_arn, params.get("service"))
            if service is None:
                raise ApiError("ServiceNotFoundException", "Service not found.")
            records = [
                (r.created_at.timestamp(), r.arn, r.brief())
                for r in service.service_deployments
                if (not statuses or r.status in statuses)
                and (before is None or r.created_at.timestamp() < before)
                and (after is None or r.created_at.timestamp() > after)
            ]
        records.sort(key=lambda r: (r[0], r[1]))
        page, token = paginate(
            records,
            key=lambda r: (r[0], r[1]),
            max_results=params.get("maxResults"),
            next_token=params.get("nextToken"),
            default=20,
            limit=100,
            query=f"list-service-deployments:{service.arn}:{statuses}:{before}:{after}",
            descending=True,  # newest first
        )
        return {"serviceDeployments": [r[2] for r in page], **({"nextToken": token} if token else {})}

    def _describe(self, request: ApiRequest) -> dict[str, Any]:
        arns = request.params.get("serviceDeploymentArns")
        if not isinstance(arns, list) or not arns or len(arns) > MAX_DESCRIBE:
            raise invalid_parameter(f"serviceDeploymentArns must list between 1 and {MAX_DESCRIBE} ARNs.")
        found, failures = [], []
        with self.scheduler.lock:
            for arn in arns:
                record = self.scheduler.service_deployments.get(arn) if isinstance(arn, str) else None
                if record is None:
                    failures.append({"arn": str(arn), "reason": "MISSING"})
                else:
                    found.append(record.describe())
        return {"serviceDeployments": found, "failures": failures}

    def _stop(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        arn = params.get("serviceDeploymentArn")
        stop_type = params.get("stopType") or "ROLLBACK"
        if stop_type not in ("ROLLBACK", "ABORT"):
            raise invalid_parameter("stopType must be ROLLBACK or ABORT.")
        with self.scheduler.lock:
            record = self._record(arn)
            if record.status != SD_IN_PROGRESS:
                raise ApiError(
                    "ConflictException",
                    f"The service deployment is {record.status}: only an IN_PROGRESS service deployment can be "
                    "stopped.",
                )
            at = self.scheduler.clock.timestamp()
            if stop_type == "ABORT":
                self.scheduler.request_stop(record, at)
                return {"serviceDeploymentArn": arn}
            if record.service.last_completed is None:
                raise ApiError(
                    "ConflictException",
                    "The service has no completed service deployment to roll back to: stop it with stopType ABORT.",
                )
            self.scheduler.request_rollback(record, at)
        return {"serviceDeploymentArn": arn}

    def _continue(self, request: ApiRequest) -> dict[str, Any]:
        """ContinueServiceDeployment: CONTINUE (the default) or ROLLBACK a PAUSE hook that awaits action."""
        params = request.params
        arn, hook_id, action = (
            params.get("serviceDeploymentArn"),
            params.get("hookId"),
            params.get("action") or "CONTINUE",
        )
        if action not in ("CONTINUE", "ROLLBACK"):
            raise invalid_parameter("action must be CONTINUE or ROLLBACK.")
        with self.scheduler.lock:
            record = self._record(arn)
            runs = record.traffic.hooks if record.traffic is not None else []
            run = next((r for r in runs if r.hook_id == hook_id), None)
            if run is None or run.status != "AWAITING_ACTION" or record.status != SD_IN_PROGRESS:
                raise invalid_parameter(
                    f"The service deployment has no lifecycle hook {hook_id} awaiting action: find the hookId among "
                    "its lifecycleHookDetails with DescribeServiceDeployments."
                )
            self.scheduler.shifts.continue_hook(record, run, action, self.scheduler.clock.timestamp())
        return {"serviceDeploymentArn": arn}

    def _record(self, arn: Any) -> ServiceDeployment:
        """The service deployment ``arn`` names (the caller holds the scheduler's lock)."""
        record = self.scheduler.service_deployments.get(arn) if isinstance(arn, str) else None
        if record is None:
            raise ApiError(
                "ServiceDeploymentNotFoundException",
                f"The service deployment {arn} does not exist: list them with ListServiceDeployments.",
            )
        return record

    def _describe_revisions(self, request: ApiRequest) -> dict[str, Any]:
        arns = request.params.get("serviceRevisionArns")
        if not isinstance(arns, list) or not arns or len(arns) > MAX_DESCRIBE:
            raise invalid_parameter(f"serviceRevisionArns must list between 1 and {MAX_DESCRIBE} ARNs.")
        found: list[dict[str, Any]] = []
        failures: list[dict[str, str]] = []
        with self.scheduler.lock:
            revisions: dict[str, Deployment] = {}
            for record in self.scheduler.service_deployments.values():
                for deployment in (record.target, *record.sources):
                    revisions.setdefault(deployment.revision_arn, deployment)
            for arn in arns:
                known = revisions.get(arn) if isinstance(arn, str) else None
                if known is None:
                    failures.append({"arn": str(arn), "reason": "MISSING"})
                else:
                    found.append(_revision(known))
        return {"serviceRevisions": found, "failures": failures}


def _revision(deployment: Deployment) -> dict[str, Any]:
    service = deployment.service
    out: dict[str, Any] = {
        "serviceRevisionArn": deployment.revision_arn,
        "serviceArn": service.arn,
        "clusterArn": service.cluster_arn,
        "taskDefinition": deployment.revision.arn,
        "launchType": service.launch_type,
        "loadBalancers": service.params.get("loadBalancers", []),
        "serviceRegistries": service.params.get("serviceRegistries", []),
        "containerImages": deployment.container_images(),
        "createdAt": deployment.created_at,
    }
    if service.params.get("networkConfiguration"):
        out["networkConfiguration"] = service.params["networkConfiguration"]
    return out


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise invalid_parameter("createdAt.before and createdAt.after must be timestamps.")


__all__ = ["ServiceDeploymentApi"]
