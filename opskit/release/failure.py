"""Why a rollout failed, gathered the way a person at the console would: the service deployment's record (the
rollback reason, the circuit breaker's count against its threshold, the alarms in ALARM, the hooks that failed or
timed out), the tasks of the new revision that stopped (``stoppedReason``, each container's exit code, reason and
health), and the last lines of the failing container's log in CloudWatch Logs (awslogs).

Reading the cause never turns a failed release into an error: what cannot be read (no permission for
``logs:GetLogEvents``, a log group in another region) is said in the diagnosis and the rest is kept.

>>> failure = diagnose(aws, verdict.record, task_definition_arn, cluster="prod", service="web")   # doctest: +SKIP
>>> failure.cause
'container web exited with code 3 (Essential container in task exited); its log ends: FATAL: DATABASE_URL unset'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opskit.aws import Aws
from opskit.errors import AwsError

if TYPE_CHECKING:
    import pandas as pd

LOG_LINES = 20  # of the failing container's log
MAX_TASKS = 100  # stopped tasks read (one DescribeTasks)
FRAME_COLUMNS = ["kind", "subject", "status", "detail"]
SCALED_IN = "Scaling activity initiated by"  # the stoppedReason of a task the scheduler stopped, not a failure


@dataclass(frozen=True)
class ContainerExit:
    name: str
    exit_code: int | None
    reason: str | None
    health: str | None


@dataclass(frozen=True)
class StoppedTask:
    task_id: str
    stopped_reason: str
    stop_code: str | None
    health: str | None
    stopped_at: str | None
    containers: tuple[ContainerExit, ...]

    def failing_container(self) -> ContainerExit | None:
        """The container that ended it: one with a non-zero exit code, else one with a reason, else the first."""
        return next(
            (c for c in self.containers if c.exit_code not in (None, 0)),
            next((c for c in self.containers if c.reason), self.containers[0] if self.containers else None),
        )


@dataclass(frozen=True)
class Failure:
    """What a failed service deployment's record and its stopped tasks say; :attr:`cause` in one line."""

    reason: str = ""  # the rollback's reason, else the record's statusReason
    breaker: dict[str, Any] = field(default_factory=dict)  # status, failureCount, threshold
    alarms: tuple[str, ...] = ()  # in ALARM
    hooks: tuple[dict[str, Any], ...] = ()  # lifecycleHookDetails entries that FAILED or TIMED_OUT
    tasks: tuple[StoppedTask, ...] = ()  # the new revision's stopped tasks, latest first
    log: tuple[str, ...] = ()  # the last lines of the failing container's log
    log_source: str = ""  # "<group> <stream>", or why the log could not be read
    unread: tuple[str, ...] = ()  # what could not be read, and why

    @property
    def cause(self) -> str:
        """The cause in the words a person acts on: the failing container's exit code and reason, the task's stopped
        reason, the log's last line; else the failing hook, the alarms, the breaker."""
        said = []
        task = self.tasks[0] if self.tasks else None
        container = task.failing_container() if task else None
        if task and container:
            what = f"container {container.name}"
            if container.exit_code not in (None, 0):
                what += f" exited with code {container.exit_code}"
            elif container.reason:
                what += f" did not run: {container.reason}"
            else:
                what += " stopped"
            why = [r for r in (task.stopped_reason, container.reason if container.exit_code else None) if r]
            if container.health == "UNHEALTHY":
                why.append("health check UNHEALTHY")
            said.append(f"{what} ({'; '.join(dict.fromkeys(why))})" if why else what)
        elif task:
            said.append(f"task {task.task_id} stopped: {task.stopped_reason}")
        if self.log:
            said.append(f"its log ends: {self.log[-1]}")
        for hook in self.hooks:
            said.append(f"hook {hook.get('hookId')} {hook.get('status')}")
        if self.alarms:
            said.append(f"in ALARM: {', '.join(self.alarms)}")
        if not said and self.breaker.get("status") == "TRIGGERED":
            said.append(
                f"the circuit breaker counted {self.breaker.get('failureCount')} of {self.breaker.get('threshold')} "
                "failed tasks"
            )
        return "; ".join(said) or self.reason

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cause": self.cause}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        tasks = tuple(
            StoppedTask(**{**t, "containers": tuple(ContainerExit(**c) for c in t.get("containers", ()))})
            for t in data.get("tasks", ())
        )
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "tasks"}
        for name in ("alarms", "hooks", "log", "unread"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known, tasks=tasks)

    def rows(self) -> list[dict[str, Any]]:
        """One row per thing that says why: the reason, the breaker, each alarm, hook, stopped task and container,
        and each log line."""
        rows = [{"kind": "reason", "subject": "service deployment", "status": "", "detail": self.reason}]
        if self.breaker.get("status") not in (None, "DISABLED"):
            count = f"{self.breaker.get('failureCount', 0)} of {self.breaker.get('threshold', '?')} failed tasks"
            rows.append({"kind": "circuit breaker", "subject": "", "status": self.breaker["status"], "detail": count})
        rows += [{"kind": "alarm", "subject": name, "status": "ALARM", "detail": ""} for name in self.alarms]
        rows += [
            {
                "kind": "hook",
                "subject": str(h.get("hookId")),
                "status": str(h.get("status")),
                "detail": str(h.get("targetArn") or h.get("targetType") or ""),
            }
            for h in self.hooks
        ]
        for task in self.tasks:
            rows.append(
                {"kind": "task", "subject": task.task_id, "status": task.stop_code or "", "detail": task.stopped_reason}
            )
            for c in task.containers:
                code = "" if c.exit_code is None else f"exit code {c.exit_code}"
                detail = "; ".join(x for x in (code, c.reason, c.health and f"health {c.health}") if x)
                rows.append(
                    {"kind": "container", "subject": f"{task.task_id}/{c.name}", "status": "", "detail": detail}
                )
        rows += [{"kind": "log", "subject": self.log_source, "status": "", "detail": line} for line in self.log]
        rows += [{"kind": "unread", "subject": "", "status": "", "detail": why} for why in self.unread]
        return rows

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=FRAME_COLUMNS)


def diagnose(
    aws: Aws, record: dict[str, Any], task_definition_arn: str | None, *, cluster: str, service: str
) -> Failure:
    """Why the service deployment ``record`` (DescribeServiceDeployments, raw) failed; ``task_definition_arn`` is
    the revision it deployed, whose stopped tasks and log are read."""
    rollback = record.get("rollback") or {}
    hooks = tuple(h for h in record.get("lifecycleHookDetails") or [] if h.get("status") in ("FAILED", "TIMED_OUT"))
    unread: list[str] = []
    tasks: tuple[StoppedTask, ...] = ()
    log: tuple[str, ...] = ()
    source = ""
    if task_definition_arn:
        try:
            tasks, raw = _stopped_tasks(aws, cluster, service, task_definition_arn, record.get("startedAt"))
        except AwsError as exc:
            unread.append(f"the stopped tasks: {exc}")
            raw = []
        if tasks:
            try:
                log, source, problem = _last_log_lines(aws, task_definition_arn, raw[0], tasks[0])
            except AwsError as exc:
                problem = str(exc)
            if problem:
                unread.append(f"the container's log: {problem}")
    return Failure(
        reason=str(rollback.get("reason") or record.get("statusReason") or ""),
        breaker=dict(record.get("deploymentCircuitBreaker") or {}),
        alarms=tuple((record.get("alarms") or {}).get("triggeredAlarmNames") or ()),
        hooks=hooks,
        tasks=tasks,
        log=log,
        log_source=source,
        unread=tuple(unread),
    )


def _stopped_tasks(
    aws: Aws, cluster: str, service: str, task_definition_arn: str, since: Any
) -> tuple[tuple[StoppedTask, ...], list[dict[str, Any]]]:
    """The service's stopped tasks of ``task_definition_arn`` that failed (since the deployment started): those that
    stopped for a reason of their own first, latest first."""
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED", maxResults=MAX_TASKS)
    if not arns.get("taskArns"):
        return (), []
    described = ecs.describe_tasks(cluster=cluster, tasks=arns["taskArns"])["tasks"]
    start = _moment(since)
    ours = [
        t
        for t in described
        if t.get("taskDefinitionArn") == task_definition_arn
        and (start is None or (_moment(t.get("createdAt")) or start) >= start)
        and _failed(t)
    ]
    # Those that stopped for a reason of their own first (a task scaled in as it crashed says less), latest first.
    ours.sort(
        key=lambda t: (
            not str(t.get("stoppedReason") or "").startswith(SCALED_IN),
            _moment(t.get("stoppedAt") or t.get("createdAt")) or datetime.min.replace(tzinfo=UTC),
        ),
        reverse=True,
    )
    return tuple(_stopped(t) for t in ours), ours


def _failed(task: dict[str, Any]) -> bool:
    """Whether a stopped task failed, rather than being scaled in (a rollback's, a finished deployment's): ECS
    stops those with "Scaling activity initiated by (deployment ...)", and their containers exit as told."""
    if any(c.get("exitCode") not in (None, 0) for c in task.get("containers") or []):
        return True
    return not str(task.get("stoppedReason") or "").startswith(SCALED_IN)


def _stopped(task: dict[str, Any]) -> StoppedTask:
    stopped = _moment(task.get("stoppedAt"))
    return StoppedTask(
        task_id=str(task.get("taskArn", "")).rsplit("/", 1)[-1],
        stopped_reason=str(task.get("stoppedReason") or ""),
        stop_code=task.get("stopCode"),
        health=task.get("healthStatus"),
        stopped_at=stopped.isoformat() if stopped else None,
        containers=tuple(
            ContainerExit(
                name=str(c.get("name")),
                exit_code=c.get("exitCode"),
                reason=c.get("reason"),
                health=c.get("healthStatus"),
            )
            for c in task.get("containers") or []
        ),
    )


def _last_log_lines(
    aws: Aws, task_definition_arn: str, raw_task: dict[str, Any], task: StoppedTask
) -> tuple[tuple[str, ...], str, str]:
    """The failing container's last log lines, where they are, and why they could not be read (awslogs only)."""
    container = task.failing_container()
    if container is None:
        return (), "", ""
    body = aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": task_definition_arn})["taskDefinition"]
    definition: dict[str, Any] = next(
        (c for c in body.get("containerDefinitions", []) if c.get("name") == container.name), {}
    )
    config = definition.get("logConfiguration") or {}
    if config.get("logDriver") != "awslogs":
        driver = config.get("logDriver") or "no log driver"
        return (), "", f"container {container.name} logs with {driver}, not awslogs: read its log there"
    options = config.get("options") or {}
    group, region = options.get("awslogs-group"), options.get("awslogs-region")
    if region and region != aws.region:
        return (), "", f"{container.name}'s log group {group} is in {region}: read it there"
    prefix = options.get("awslogs-stream-prefix")
    if not group or not prefix:
        return (), "", f"{container.name}'s awslogs options name no group and stream prefix: its stream is unknown"
    stream = f"{prefix}/{container.name}/{raw_task.get('taskArn', '').rsplit('/', 1)[-1]}"
    try:
        events = aws.client("logs").get_log_events(
            logGroupName=group, logStreamName=stream, limit=LOG_LINES, startFromHead=False
        )["events"]
    except AwsError as exc:
        if exc.code == "ResourceNotFoundException":
            return (), "", f"{group} has no stream {stream}: the container wrote nothing"
        raise
    lines = tuple(str(e.get("message", "")).rstrip() for e in events if str(e.get("message", "")).strip())
    return lines, f"{group} {stream}", "" if lines else f"{group} {stream} is empty: the container wrote nothing"


def _moment(value: Any) -> datetime | None:
    """A timestamp as boto3 (datetime) or call_json (epoch seconds) gives it, in UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return None


__all__ = ["ContainerExit", "Failure", "StoppedTask", "diagnose"]
