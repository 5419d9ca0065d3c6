"""The ECS service scheduler, simulated: rolling deployments, the circuit breaker, rollbacks.

On top of :class:`~opskit.sandbox.ecs.task_lifecycle.TaskLifecycle` (the event queue and the tasks), this
decides what a service's deployments do: a new PRIMARY launches tasks within ``maximumPercent``, older
deployments drain within ``minimumHealthyPercent`` as the new tasks get healthy, a drained deployment
disappears, and the rollout goes IN_PROGRESS -> COMPLETED, or FAILED when the circuit breaker counts enough
failed tasks (then, with rollback on, a new PRIMARY of the last COMPLETED deployment's revision starts).
Service events are written in ECS's words. The caller holds :attr:`lock`; nothing here calls into the
task-definition model (revisions are resolved before the lock is taken, so the two locks never cross).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

from opskit.sandbox.clock import from_epoch
from opskit.sandbox.ecs.records import (
    ACTIVE,
    COMPLETED,
    DEACTIVATING,
    DRAINING,
    FAILED,
    IN_PROGRESS,
    INACTIVE,
    NOT_YET_RUNNING,
    RUNNING,
    SD_IN_PROGRESS,
    SD_ROLLBACK_FAILED,
    SD_ROLLBACK_IN_PROGRESS,
    SD_ROLLBACK_REQUESTED,
    SD_ROLLBACK_SUCCESSFUL,
    SD_STOP_REQUESTED,
    SD_STOPPED,
    SD_SUCCESSFUL,
    STOPPED,
    Deployment,
    Service,
    ServiceDeployment,
    Task,
    breaker_threshold,
    deployment_id,
)
from opskit.sandbox.ecs.task_lifecycle import TaskLifecycle
from opskit.sandbox.ecs.taskdefs import Revision
from opskit.sandbox.ecs.traffic import SHIFTING, TrafficShifts
from opskit.sandbox.elb import LoadBalancing
from opskit.sandbox.lambdas.runner import LambdaRunner

SCHEDULER_DELAY = 2.0  # the service scheduler acts on a change within a couple of seconds
BACKOFF_BASE, BACKOFF_MAX = 5.0, 900.0  # task launch backoff after consecutive failures
INACTIVE_RETENTION = 3600.0  # a deleted service stays describable (INACTIVE) for about an hour
# A rollout completes once the PRIMARY has been fully up this long: a task that starts and soon exits is
# still caught (and counted by the circuit breaker) before the deployment is called done.
STABILIZE_SECONDS = 30.0
ALARM_INTERVAL = 10.0  # how often a deployment looks at its CloudWatch alarms (sandbox seconds)

BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
ROLLBACK_REQUESTED = "StopServiceDeployment requested a rollback."
UNSTEADY = (
    "is unable to consistently start tasks successfully. "
    "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
)


class Scheduler(TaskLifecycle):
    def __init__(
        self,
        *,
        load_balancing: LoadBalancing | None = None,
        lambdas: LambdaRunner | None = None,
        alarms_in_alarm: Callable[[list[str]], list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.services: dict[tuple[str, str], Service] = {}  # (cluster ARN, name)
        self.service_deployments: dict[str, ServiceDeployment] = {}  # ARN
        self.shifts = TrafficShifts(self, load_balancing, lambdas)
        # Which of these CloudWatch alarms are in ALARM now (moto's CloudWatch answers)?
        self.alarms_in_alarm = alarms_in_alarm or (lambda names: [])
        self._addresses = itertools.count(1)

    # -- what the API asks for -------------------------------------------------------------------------------
    def start_deployment(
        self,
        service: Service,
        revision: Revision,
        at: float,
        *,
        revision_arn: str | None = None,
        record: ServiceDeployment | None = None,
        digests: dict[str, str] | None = None,
    ) -> Deployment:
        """A new PRIMARY; the previous PRIMARY becomes ACTIVE and drains as the new one gets healthy.

        Its images are resolved to digests now, as ECS does when a deployment starts (``digests`` given: a rollback
        runs its service revision's images again, whatever their tags name today)."""
        when = from_epoch(at)
        previous = service.deployments[0] if service.deployments else None
        deployment = Deployment(
            id=deployment_id(),
            service=service,
            revision=revision,
            revision_arn=revision_arn
            or f"arn:aws:ecs:{self.region}:{self.account_id}:service-revision/"
            f"{service.cluster_name}/{service.name}/{deployment_id().split('/')[1]}",
            created_at=when,
            updated_at=when,
            desired_count=service.desired_count,
            is_rollback=record is not None,
            digests=dict(digests) if digests is not None else self._resolve(revision),
        )
        if previous is not None:
            previous.status = ACTIVE
            previous.updated_at = when
            superseded = previous.record
            if superseded is not None and superseded is not record and superseded.status == SD_IN_PROGRESS:
                superseded.status, superseded.stopped_at, superseded.updated_at = SD_STOPPED, when, when
                superseded.status_reason = "Service deployment stopped: a newer service deployment started."
                superseded.breaker_status = "MONITORING_COMPLETE"
        if record is None:
            arn = (
                f"arn:aws:ecs:{self.region}:{self.account_id}:service-deployment/"
                f"{service.cluster_name}/{service.name}/{uuid.uuid4().hex[:22]}"
            )
            record = ServiceDeployment(
                arn=arn,
                service=service,
                target=deployment,
                sources=list(service.deployments),
                created_at=when,
                deployment_configuration=dict(service.deployment_configuration),
            )
            service.service_deployments.append(record)
            self.service_deployments[arn] = record
        deployment.record = record
        load_balancers = service.params.get("loadBalancers") or []
        if load_balancers and load_balancers[0].get("targetGroupArn"):
            deployment.target_group = service.production_group or load_balancers[0]["targetGroupArn"]
        service.deployments.insert(0, deployment)
        service.steady = False
        config = record.deployment_configuration
        if record.target is deployment and not deployment.is_rollback:
            if config.get("strategy") in SHIFTING and previous is not None and previous.live_tasks:
                self.shifts.begin(record, previous, at)
            self._watch_alarms(record, at)
        self.poke(service, at)
        return deployment

    # -- alarms ----------------------------------------------------------------------------------------------------
    def _watch_alarms(self, record: ServiceDeployment, at: float) -> None:
        alarms = record.deployment_configuration.get("alarms") or {}
        if not alarms.get("enable") or not alarms.get("alarmNames"):
            return
        record.alarm_names, record.alarms_status = list(alarms["alarmNames"]), "MONITORING"
        self.schedule(at + ALARM_INTERVAL, lambda at: self._check_alarms(record, at))

    def _check_alarms(self, record: ServiceDeployment, at: float) -> None:
        """While the deployment runs (its bake time included), every ALARM_INTERVAL: an alarm in ALARM fails it and,
        with ``rollback``, rolls it back."""
        if record.status != SD_IN_PROGRESS:
            if record.alarms_status == "MONITORING":
                record.alarms_status = "MONITORING_COMPLETE"
            return
        triggered = self.alarms_in_alarm(record.alarm_names)
        if not triggered:
            self.schedule(at + ALARM_INTERVAL, lambda at: self._check_alarms(record, at))
            return
        when, service, deployment = from_epoch(at), record.service, record.target
        record.triggered_alarms, record.alarms_status, record.updated_at = triggered, "TRIGGERED", when
        reason = f"One or more CloudWatch alarms are in ALARM state: {', '.join(triggered)}."
        service.event(
            when, f"(deployment {deployment.id}) deployment failed: alarm(s) {', '.join(triggered)} in ALARM."
        )
        if deployment.rollout_state == IN_PROGRESS:
            deployment.rollout_state, deployment.rollout_state_reason, deployment.updated_at = FAILED, reason, when
        rollback = bool((record.deployment_configuration.get("alarms") or {}).get("rollback"))
        self._fail(record, at, reason, rollback=rollback, stop_reason=reason)

    def _resolve(self, revision: Revision) -> dict[str, str]:
        resolved = {}
        for container in revision.body.get("containerDefinitions", []):
            if container.get("versionConsistency") == "disabled":
                continue  # the tag is pulled as it is when each task starts
            digest = self.digest_of(str(container.get("image", "")))
            if digest is not None:
                resolved[str(container["name"])] = digest
        return resolved

    def set_desired_count(self, service: Service, count: int, at: float) -> None:
        service.desired_count = count
        service.primary.desired_count = count
        service.primary.updated_at = from_epoch(at)
        service.steady = False
        self.poke(service, at)

    def delete_service(self, service: Service, at: float) -> None:
        service.status = DRAINING
        service.desired_count = 0
        self.poke(service, at)
        self.settle(service, at)

    def stop_task(self, task: Task, at: float, reason: str) -> None:
        self.stop(task, at, reason, code="UserInitiated")
        self.poke(task.service, at)

    def request_rollback(self, record: ServiceDeployment, at: float) -> None:
        """StopServiceDeployment(ROLLBACK): back to the last completed deployment, circuit breaker or not."""
        service = record.service
        if record.traffic is not None:  # blue still runs: traffic goes back to it
            self.schedule(at + SCHEDULER_DELAY, lambda at: self.shifts.roll_back(record, at, ROLLBACK_REQUESTED))
            return
        record.status, record.updated_at = SD_ROLLBACK_REQUESTED, from_epoch(at)
        record.rollback_to = service.last_completed

        def begin(at: float) -> None:
            if record.status != SD_ROLLBACK_REQUESTED or record.rollback_to is None:
                return
            if not service.deployments or service.primary is not record.target:
                record.status, record.stopped_at = SD_STOPPED, from_epoch(at)  # a newer deployment came first
                return
            target = record.target
            if target.rollout_state == IN_PROGRESS:
                target.rollout_state = FAILED
                target.rollout_state_reason = "Service deployment rolled back by a StopServiceDeployment request."
            self._rollback(service, record, record.rollback_to, at, reason=ROLLBACK_REQUESTED)

        self.schedule(at + SCHEDULER_DELAY, begin)

    def request_stop(self, record: ServiceDeployment, at: float) -> None:
        """StopServiceDeployment(ABORT): STOP_REQUESTED, then STOPPED where it stands. The target deployment
        launches no more tasks and the older ones keep what still runs; nothing is rolled back."""
        service = record.service
        record.status, record.updated_at = SD_STOP_REQUESTED, from_epoch(at)

        def stop(at: float) -> None:
            if record.status != SD_STOP_REQUESTED:
                return
            when = from_epoch(at)
            record.status, record.stopped_at, record.updated_at = SD_STOPPED, when, when
            record.status_reason = "Service deployment stopped by a StopServiceDeployment request."
            record.breaker_status = "MONITORING_COMPLETE"
            target = record.target
            if target.rollout_state == IN_PROGRESS:
                target.rollout_state, target.updated_at = FAILED, when
                target.rollout_state_reason = record.status_reason
            service.event(when, f"(deployment {target.id}) deployment stopped.")
            self.poke(service, at)

        self.schedule(at + SCHEDULER_DELAY, stop)

    def poke(self, service: Service, at: float, delay: float = SCHEDULER_DELAY) -> None:
        """Have the scheduler look at ``service`` shortly (one look per burst of changes)."""
        due = at + delay
        if service.reconcile_at is not None and service.reconcile_at <= due:
            return
        service.reconcile_at = due
        self.schedule(due, lambda at: self._reconcile(service, at))

    def in_use(self, revision_arn: str) -> bool:
        for service in self.services.values():
            if service.status != INACTIVE and any(d.revision.arn == revision_arn for d in service.deployments):
                return True
        return any(t.revision.arn == revision_arn and t.last_status != STOPPED for t in self.tasks.values())

    # -- the service scheduler -------------------------------------------------------------------------------
    def shifted(self, seconds: float) -> None:
        for service in self.services.values():
            if service.reconcile_at is not None:
                service.reconcile_at += seconds
            for deployment in service.deployments:
                deployment.next_launch_at += seconds

    def _reconcile(self, service: Service, at: float) -> None:
        service.reconcile_at = None  # (a look that turns out extra changes nothing: this is idempotent)
        if service.status == INACTIVE or not service.deployments:
            return
        primary, old = service.primary, service.deployments[1:]
        cause = f"Scaling activity initiated by (deployment {primary.id})"
        desired = service.desired_count if service.status == ACTIVE else 0
        config = service.deployment_configuration
        upper = max(desired, desired * int(config.get("maximumPercent", 200)) // 100)
        lower = min(desired, -(-desired * int(config.get("minimumHealthyPercent", 100)) // 100))
        if upper <= lower and any(d.live_tasks for d in old):
            lower = max(0, upper - 1)  # 100/100 would never move: let one task at a time be replaced
        hold = self.shifts.hold(service)  # a traffic-shifting deployment: green beside blue, then blue all at once
        if hold is not None:
            upper, lower = desired + sum(len(d.live_tasks) for d in old), 0
        stopping: list[Task] = []
        # Old deployments' tasks that are not running yet add no availability; nor do extra primary tasks.
        stopping += [t for d in old for t in d.live_tasks if t.last_status in NOT_YET_RUNNING]
        extra = len(primary.live_tasks) - desired
        if extra > 0:
            by_use = sorted(primary.live_tasks, key=lambda t: (t.healthy, t.last_status == RUNNING))
            stopping += by_use[:extra]
        for task in stopping:
            self.stop(task, at, cause)
        live = [t for d in service.deployments for t in d.live_tasks]
        started: list[Task] = []
        if service.status == ACTIVE and primary.rollout_state != FAILED and (hold is None or hold[0]):
            if at >= primary.next_launch_at:
                count = min(desired - len(primary.live_tasks), upper - len(live))
                started = [self.launch(primary, at) for _ in range(max(0, count))]
            else:
                self.poke(service, primary.next_launch_at, delay=0.0)
        # Drain old deployments, oldest first, as far as minimumHealthyPercent allows. A task still waiting
        # for its first health check may yet count: it goes only once enough others are healthy.
        healthy = sum(1 for t in live if t.healthy)
        drained: list[Task] = []
        for deployment in reversed(old) if hold is None or not hold[1] else ():
            for task in sorted(deployment.live_tasks, key=lambda t: t.healthy):
                if healthy - task.healthy < lower:
                    continue
                healthy -= task.healthy
                self.stop(task, at, cause)
                drained.append(task)
        criteria = _early_success(service)
        if criteria and criteria.get("sourceServiceRevisionCleanup") == "BLOCKING" and _early_success_met(service):
            # Early success with BLOCKING: the source revisions' tasks go now, and the deployment completes after.
            rest = [t for d in old for t in d.live_tasks]
            for task in rest:
                self.stop(task, at, cause)
            drained += rest
        primary.desired_count = desired
        for deployment in old:
            deployment.desired_count = len(deployment.live_tasks)
        when = from_epoch(at)
        stopped = stopping + drained
        if stopped:
            service.event(when, f"has stopped {len(stopped)} running tasks: {_task_list(stopped)}.")
        if started:
            service.event(when, f"has started {len(started)} tasks: {_task_list(started)}.")
        self.settle(service, at)

    def settle(self, service: Service, at: float) -> None:
        """Retire drained deployments; notice a completed rollout, a steady state, a drained service."""
        when = from_epoch(at)
        if not service.deployments:
            return
        primary = service.primary
        live = primary.live_tasks
        primary_ready = len(live) == primary.desired_count and all(t.healthy for t in live)
        # A drained deployment (a failed one too) stays listed as ACTIVE until the PRIMARY is fully up.
        for retired in [d for d in service.deployments[1:] if not d.live_tasks and not _winding_down(d)]:
            if primary_ready or service.status != ACTIVE:
                retired.desired_count = 0
                service.deployments.remove(retired)
        if service.status == DRAINING and not any(_winding_down(d) or d.live_tasks for d in service.deployments):
            service.status, service.inactive_at = INACTIVE, when
            self.schedule(at + INACTIVE_RETENTION, lambda at: self._forget_service(service))
            return
        settled = (
            len(service.deployments) == 1 and service.status == ACTIVE and primary_ready and not _winding_down(primary)
        )
        if not settled:
            primary.ready_since = None
        elif primary.ready_since is None:
            primary.ready_since = at
            self.schedule(at + STABILIZE_SECONDS, lambda at: self.settle(service, at))
        stable = settled and primary.ready_since is not None and at - primary.ready_since >= STABILIZE_SECONDS
        criteria = _early_success(service)
        early = (
            criteria is not None
            and _early_success_met(service)
            and (
                criteria.get("sourceServiceRevisionCleanup") == "DEFERRED"
                or not any(d.live_tasks or _winding_down(d) for d in service.deployments[1:])
            )
        )
        if (stable or early) and primary.rollout_state == IN_PROGRESS:
            primary.rollout_state = COMPLETED
            primary.rollout_state_reason = f"ECS deployment {primary.id} completed."
            primary.updated_at = when
            service.last_completed = primary
            service.event(when, f"(deployment {primary.id}) deployment completed.")
            record = primary.record
            if record is not None and record.status in (SD_IN_PROGRESS, SD_ROLLBACK_IN_PROGRESS):
                record.status = SD_ROLLBACK_SUCCESSFUL if primary.is_rollback else SD_SUCCESSFUL
                record.finished_at = record.updated_at = when
                record.breaker_status = "MONITORING_COMPLETE" if record.breaker_status == "MONITORING" else "TRIGGERED"
        if stable and primary.rollout_state == COMPLETED and not service.steady:
            service.steady = True
            service.event(when, "has reached a steady state.")
        elif not settled:
            service.steady = False
        self.shifts.check(service, at)

    # -- tasks and their targets -----------------------------------------------------------------------------------
    def address(self) -> str:
        n = next(self._addresses)
        return f"10.0.{n // 250 % 250}.{n % 250 + 4}"

    def task_running(self, task: Task, at: float) -> None:
        self.shifts.task_running(task, at)

    def task_stopping(self, task: Task) -> None:
        self.shifts.task_stopping(task)

    def task_stopped(self, task: Task) -> None:
        self.shifts.task_stopped(task)

    # -- failures and the circuit breaker --------------------------------------------------------------------
    def count_failure(self, task: Task, at: float) -> None:
        deployment, service = task.deployment, task.service
        if deployment.rollout_state == COMPLETED:
            return
        task.failed = True
        deployment.failed_tasks += 1
        if deployment.rollout_state == IN_PROGRESS:  # a tripped breaker counts no more
            deployment.breaker_failures += 1
        deployment.consecutive_failures += 1
        failures = deployment.consecutive_failures
        deployment.next_launch_at = at + min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1))
        breaker = service.deployment_configuration.get("deploymentCircuitBreaker") or {}
        tripped = (
            breaker.get("enable")
            and deployment is service.primary
            and deployment.rollout_state == IN_PROGRESS
            and deployment.breaker_failures >= breaker_threshold(breaker, service.desired_count)
        )
        if tripped:
            self._trip(service, deployment, at, rollback=bool(breaker.get("rollback")))
        elif failures == 3 or failures % 10 == 0:
            service.event(from_epoch(at), UNSTEADY)

    def task_healthy(self, task: Task, at: float) -> None:
        """A task of the deployment got healthy: RUNNING, and passing its health checks if it has any.

        The launch backoff starts over, and, with ``resetOnHealthyTask`` (on unless turned off), so does the circuit
        breaker's count. So, as on ECS, a task that starts and then exits counts as a failure, but a task without
        health checks is healthy the moment it runs: a service whose containers run for a while and then crash
        resets the count at every start and never trips the breaker, unless its containers have a health check that
        they fail first or the reset is turned off. A task that never reaches RUNNING cannot reset it.
        """
        deployment = task.deployment
        deployment.consecutive_failures = 0
        breaker = task.service.deployment_configuration.get("deploymentCircuitBreaker") or {}
        if breaker.get("resetOnHealthyTask", True) and deployment.rollout_state == IN_PROGRESS:
            deployment.breaker_failures = 0

    def _trip(self, service: Service, deployment: Deployment, at: float, *, rollback: bool) -> None:
        when = from_epoch(at)
        deployment.rollout_state, deployment.rollout_state_reason = FAILED, BREAKER_REASON
        deployment.updated_at = when
        service.event(when, f"(deployment {deployment.id}) deployment failed: tasks failed to start.")
        record = deployment.record
        if record is None:
            return
        record.breaker_status, record.updated_at = "TRIGGERED", when
        if deployment.is_rollback:
            record.status, record.finished_at = SD_ROLLBACK_FAILED, when
        else:
            reason = "Circuit breaker failure threshold reached."
            self._fail(record, at, reason, rollback=rollback, stop_reason=BREAKER_REASON)

    def _fail(self, record: ServiceDeployment, at: float, reason: str, *, rollback: bool, stop_reason: str) -> None:
        """A rollback monitor (the circuit breaker, an alarm) failed the deployment: with ``rollback``, back to blue
        (traffic shifting) or to the last completed deployment (rolling); else it stops where it stands."""
        service, deployment = record.service, record.target
        target = service.last_completed
        if rollback and record.traffic is not None:
            self.shifts.roll_back(record, at, reason)
        elif rollback and target is not None and target is not deployment:
            self._rollback(service, record, target, at, reason=reason)
        else:
            record.status, record.stopped_at, record.status_reason = SD_STOPPED, from_epoch(at), stop_reason

    def _rollback(
        self, service: Service, record: ServiceDeployment, target: Deployment, at: float, reason: str
    ) -> None:
        when = from_epoch(at)
        record.status, record.updated_at = SD_ROLLBACK_IN_PROGRESS, when
        record.status_reason = reason
        record.rollback = {"reason": reason, "startedAt": when, "serviceRevisionArn": target.revision_arn}
        service.event(when, f"rolling back to deployment {target.id}.")
        self.start_deployment(
            service, target.revision, at, revision_arn=target.revision_arn, record=record, digests=target.digests
        )

    def _forget_service(self, service: Service) -> None:
        key = (service.cluster_arn, service.name)
        if self.services.get(key) is service and service.status == INACTIVE:
            del self.services[key]
            for record in service.service_deployments:
                self.service_deployments.pop(record.arn, None)


def _early_success(service: Service) -> dict[str, Any] | None:
    """The service's earlySuccessCriteria when enabled (CreateService and UpdateService allow it on ROLLING only)."""
    criteria = service.deployment_configuration.get("earlySuccessCriteria") or {}
    return criteria if criteria.get("enable") else None


def _early_success_met(service: Service) -> bool:
    """Has the PRIMARY deployment, still in progress, healthyPercent of the desired count (rounded up, as AWS
    documents: 50 % of 3 is 2) healthy? The tasks still missing start as the service scales, after the deployment."""
    criteria, primary = _early_success(service), service.primary
    if criteria is None or primary.rollout_state != IN_PROGRESS or service.status != ACTIVE:
        return False
    needed = -(-service.desired_count * int(criteria.get("healthyPercent", 100)) // 100)
    return sum(1 for t in primary.live_tasks if t.healthy) >= needed


def _winding_down(deployment: Deployment) -> bool:
    return any(t.last_status == DEACTIVATING for t in deployment.tasks)


def _task_list(tasks: list[Task]) -> str:
    return " ".join(f"(task {t.id})" for t in tasks)
