"""Following one service deployment to its verdict, as ECS itself records it.

ECS keeps a record of every service deployment (DescribeServiceDeployments): its status, the lifecycle stage it is
in, the target and source service revisions with their task counts and traffic weights, its lifecycle hooks, the
circuit breaker's count against its threshold, its alarms, and why it was rolled back. The verdict is that record's
final status, never which deployment happens to be PRIMARY: a poll that comes late, or misses a stage, reads the
same verdict. What a person watching would want is reported as it changes, one line per thing that changed.

ECS runs ROLLING, BLUE_GREEN, LINEAR and CANARY deployments itself; a service whose deployments another controller
runs (CodeDeploy, or EXTERNAL) is refused: opskit's release would fight that controller.

>>> rollout = Rollout.for_service(aws, described_service)                       # doctest: +SKIP
>>> verdict = rollout.follow(progress=print, timeout=1800, poll_interval=5)     # doctest: +SKIP
>>> rollout.follow(until=Until.parse("paused")).outcome                          # doctest: +SKIP
<Outcome.REACHED: 'REACHED'>
>>> verdict.outcome, verdict.outcome.exit_code, verdict.reason                  # doctest: +SKIP
(<Outcome.ROLLED_BACK: 'ROLLED_BACK'>, 1, 'Circuit breaker failure threshold reached. ECS rolled back to web:29')
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from opskit.aws import Aws
from opskit.errors import ConfigError
from opskit.progress import Progress, ProgressEvent, ignore

STRATEGIES = ("ROLLING", "BLUE_GREEN", "LINEAR", "CANARY")
# The lifecycle stages a service deployment reports, in order (botocore's ecs model: ServiceDeploymentLifecycleStage).
LIFECYCLE_STAGES = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
)

# Statuses of a service deployment that is still going (ECS's ServiceDeploymentStatus).
GOING = ("PENDING", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED")
DEFAULT_TIMEOUT = 1800.0  # seconds a release, rollback or continue follows its deployment before it gives up
DEFAULT_POLL_INTERVAL = 5.0  # seconds between reads of the deployment's record (3x that in a bake or at a hook)
SLOW_STAGES = ("BAKE_TIME",)  # nothing moves for minutes: polled less often
SLOW_FACTOR = 3.0
ANSWERS = ("CONTINUE", "ROLLBACK")  # ContinueServiceDeployment's actions at a PAUSE hook


class Outcome(StrEnum):
    """How a release or rollback ended; :attr:`exit_code` is what ``opskit release`` and ``rollback`` exit with."""

    COMPLETED = "COMPLETED"  # ECS recorded the deployment SUCCESSFUL
    ROLLED_BACK = "ROLLED_BACK"  # ECS rolled it back (circuit breaker, alarm, hook, a rollback request) and that worked
    REFUSED = "REFUSED"  # opskit did not deploy: the plan's check failed, or AWS refused a step
    ROLLBACK_FAILED = "ROLLBACK_FAILED"  # ECS rolled it back and the rollback failed too
    STOPPED = "STOPPED"  # stopped where it stood: by request (ABORT), a newer deployment, or a monitor without rollback
    TIMED_OUT = "TIMED_OUT"  # still going when the wait gave up; it goes on in ECS
    REACHED = "REACHED"  # got where --wait-until said to stop following (a PAUSE hook, a stage); it goes on in ECS

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self]


EXIT_CODES = {
    Outcome.COMPLETED: 0,
    Outcome.ROLLED_BACK: 1,
    Outcome.REFUSED: 2,
    Outcome.ROLLBACK_FAILED: 3,
    Outcome.STOPPED: 4,
    Outcome.TIMED_OUT: 5,
    Outcome.REACHED: 0,
}
SUCCESSES = (Outcome.COMPLETED, Outcome.REACHED)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    record: dict[str, Any] = field(default_factory=dict, compare=False)  # the service deployment as ECS sent it

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESSES


@dataclass(frozen=True)
class Until:
    """Where following a deployment ends (``--wait-until``): ``deployed``, ECS recorded its verdict (the default);
    ``stable``, that, and then the service steady (one deployment, as many tasks running as desired); ``paused``, the
    deployment waits at a PAUSE hook (or ended before one); ``stage:NAME``, it reached lifecycle stage NAME or a later
    one (or ended before). A deployment that ends first always reports its verdict: polls that miss a stage never
    change it."""

    kind: str = "deployed"
    stage: str | None = None

    KINDS = ("deployed", "stable", "paused", "stage:NAME")

    @classmethod
    def parse(cls, text: str) -> Until:
        kind, _, stage = text.strip().partition(":")
        if kind == "stage":
            name = stage.strip().upper()
            if name not in LIFECYCLE_STAGES:
                raise ConfigError(
                    f"--wait-until stage:{stage} names no lifecycle stage: pass stage: and one of "
                    f"{', '.join(LIFECYCLE_STAGES)}"
                )
            return cls("stage", name)
        if kind not in ("deployed", "stable", "paused") or stage:
            raise ConfigError(f"--wait-until {text!r} is not one of {', '.join(cls.KINDS)}: pass one of them")
        return cls(kind)

    def __str__(self) -> str:
        return f"stage:{self.stage}" if self.kind == "stage" else self.kind

    def reached(self, record: dict[str, Any]) -> str | None:
        """How a deployment still going got where this ends, in words; None while it has not."""
        if self.kind == "paused":
            for hook in record.get("lifecycleHookDetails") or []:
                if hook.get("targetType") == "PAUSE" and hook.get("status") == "AWAITING_ACTION":
                    action, when = hook.get("timeoutAction", "ROLLBACK"), _when(hook.get("expiresAt"))
                    return (
                        f"the deployment waits at PAUSE hook {hook.get('hookId')}: answer it with `opskit continue` "
                        f"(or --rollback) before its timeout ({action} at {when})"
                    )
        if self.kind == "stage" and self.stage is not None:
            now = str(record.get("lifecycleStage") or "")
            if now in LIFECYCLE_STAGES and LIFECYCLE_STAGES.index(now) >= LIFECYCLE_STAGES.index(self.stage):
                return f"the deployment reached {self.stage}" + (f" (it is at {now})" if now != self.stage else "")
        return None


DEPLOYED = Until()


@dataclass(frozen=True)
class Following:
    """How a command follows a deployment (``--timeout``, ``--poll-interval``, ``--wait-until``), defaults here."""

    timeout: float = DEFAULT_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    until: Until = DEPLOYED


def strategy_of(service: dict[str, Any]) -> str:
    """The deployment strategy ECS runs for ``service`` (DescribeServices), or a one-line refusal when ECS does not
    run its deployments."""
    controller = (service.get("deploymentController") or {}).get("type", "ECS")
    name = service.get("serviceName", "the service")
    if controller == "CODE_DEPLOY":
        raise ConfigError(
            f"{name} is deployed by CodeDeploy (deploymentController CODE_DEPLOY): release it through CodeDeploy, or "
            "move it to ECS's own BLUE_GREEN strategy"
        )
    if controller != "ECS":
        raise ConfigError(
            f"{name} is deployed by an external controller (deploymentController {controller}): release it with that "
            "controller; opskit follows deployments that ECS runs"
        )
    strategy = str((service.get("deploymentConfiguration") or {}).get("strategy") or "ROLLING")
    if strategy not in STRATEGIES:
        raise ConfigError(f"{name} deploys with strategy {strategy}, which this opskit does not know: upgrade opskit")
    return strategy


@dataclass(frozen=True)
class Pause:
    """A PAUSE hook that awaits action, as :meth:`Rollout.follow` hands it to ``on_pause``: what the hook is and
    when its timeout acts, and :meth:`answer` to continue or roll back later (a panel's button) if not at once."""

    rollout: Rollout
    hook: dict[str, Any]  # its lifecycleHookDetails entry

    @property
    def hook_id(self) -> str:
        return str(self.hook.get("hookId"))

    @property
    def timeout_action(self) -> str:
        return str(self.hook.get("timeoutAction") or "ROLLBACK")

    @property
    def expires_at(self) -> datetime | None:
        value = self.hook.get("expiresAt")
        return datetime.fromtimestamp(value, UTC) if isinstance(value, (int, float)) else None

    def seconds_left(self, now: datetime | None = None) -> float | None:
        """Until the hook's timeout acts, by this machine's clock; None when it has no timeout."""
        if self.expires_at is None:
            return None
        return max(0.0, (self.expires_at - (now or datetime.now(UTC))).total_seconds())

    def describe(self) -> str:
        """``hook approve-traffic awaits action: ROLLBACK at 12:04:00 UTC unless continued``"""
        when = f"{self.timeout_action} at {_when(self.hook.get('expiresAt'))}" if self.expires_at else "no timeout"
        return f"PAUSE hook {self.hook_id} of {self.rollout.service} awaits action: {when} unless continued"

    def answer(self, action: str) -> None:
        """CONTINUE or ROLLBACK (ContinueServiceDeployment)."""
        if action not in ANSWERS:
            raise ConfigError(f"{action!r} is not an answer to a PAUSE hook: answer CONTINUE or ROLLBACK")
        self.rollout.continue_hook(self.hook_id, action)


# What to do at a PAUSE hook that awaits action: CONTINUE, ROLLBACK, or None to leave it (for `opskit continue`, the
# hook's timeout, or a later Pause.answer).
PauseAnswer = Callable[[Pause], str | None]


class Rollout:
    """One service deployment, followed through its record until ECS says how it ended."""

    def __init__(
        self,
        aws: Aws,
        arn: str,
        *,
        strategy: str = "ROLLING",
        cluster: str,
        service: str,
        bake_minutes: float | None = None,
    ) -> None:
        self.aws, self.arn, self.strategy = aws, arn, strategy
        self.cluster, self.service = cluster, service
        self._revisions: dict[str, str] = {}  # service revision ARN -> family:revision
        self._shown: dict[str, str] = {}
        self._events: set[str] | None = None
        self.bake_minutes = bake_minutes  # deploymentConfiguration.bakeTimeInMinutes, when the service says
        self._bake_seen: float | None = None  # when a poll first saw BAKE_TIME (monotonic)

    @classmethod
    def for_service(cls, aws: Aws, service: dict[str, Any], arn: str | None = None) -> Rollout:
        """The rollout of ``service``'s current service deployment (or of ``arn``)."""
        strategy = strategy_of(service)
        arn = arn or service.get("currentServiceDeployment")
        if not arn:
            raise ConfigError(
                f"{service.get('serviceName')} names no current service deployment: ECS did not start one; "
                "update the service and try again"
            )
        cluster = str(service.get("clusterArn", "")).rsplit("/", 1)[-1]
        bake = (service.get("deploymentConfiguration") or {}).get("bakeTimeInMinutes")
        return cls(
            aws,
            str(arn),
            strategy=strategy,
            cluster=cluster,
            service=str(service.get("serviceName")),
            bake_minutes=float(bake) if isinstance(bake, (int, float)) else None,
        )

    # -- reading ------------------------------------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        """The service deployment as ECS sends it (raw: an older botocore drops hooks and other new fields)."""
        answer = self.aws.call_json("ecs", "DescribeServiceDeployments", {"serviceDeploymentArns": [self.arn]})
        found = answer.get("serviceDeployments") or []
        if not found:
            failures = "; ".join(f"{f.get('reason')}: {f.get('detail', '')}" for f in answer.get("failures") or [])
            raise ConfigError(f"ECS has no service deployment {self.arn} ({failures or 'not found'}): check the region")
        return dict(found[0])

    def revision(self, service_revision_arn: str | None) -> str:
        """family:revision of a service revision (one DescribeServiceRevisions per revision, remembered)."""
        if not service_revision_arn:
            return "?"
        if service_revision_arn not in self._revisions:
            answer = self.aws.call_json(
                "ecs", "DescribeServiceRevisions", {"serviceRevisionArns": [service_revision_arn]}
            )
            for found in answer.get("serviceRevisions") or []:
                self._revisions[found["serviceRevisionArn"]] = str(found.get("taskDefinition", "?")).rsplit("/", 1)[-1]
        return self._revisions.get(service_revision_arn, "?")

    def verdict(self, record: dict[str, Any]) -> Verdict | None:
        """How the deployment ended, in the words of its record; None while it is still going."""
        status = record.get("status")
        if status in GOING:
            return None
        said = str(record.get("statusReason") or "").strip()
        rollback = record.get("rollback") or {}
        if status == "SUCCESSFUL":
            return Verdict(Outcome.COMPLETED, said or "the deployment completed", record)
        if status in ("ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"):
            why = str(rollback.get("reason") or said or "ECS rolled the deployment back").strip()
            why = f"{why.rstrip('.')}{_monitors(record)}"
            to = self.revision(rollback.get("serviceRevisionArn"))
            if status == "ROLLBACK_SUCCESSFUL":
                return Verdict(Outcome.ROLLED_BACK, f"{_sentence(why)} ECS rolled back to {to}", record)
            return Verdict(Outcome.ROLLBACK_FAILED, f"{_sentence(why)} The rollback to {to} failed: {said}", record)
        if status == "STOPPED":
            return Verdict(
                Outcome.STOPPED, f"{(said or 'the deployment was stopped').rstrip('.')}{_monitors(record)}", record
            )
        return Verdict(Outcome.STOPPED, f"the deployment ended as {status}: {said}".rstrip(": "), record)

    # -- acting on it ----------------------------------------------------------------------------------------------
    def continue_hook(self, hook_id: str, action: str = "CONTINUE") -> None:
        """ContinueServiceDeployment: CONTINUE or ROLLBACK at the PAUSE hook ``hook_id``."""
        body = {"serviceDeploymentArn": self.arn, "hookId": hook_id, "action": action}
        self.aws.call_json("ecs", "ContinueServiceDeployment", body)

    def stop(self, stop_type: str) -> None:
        """StopServiceDeployment: ROLLBACK (back to the revision it came from) or ABORT (stop where it stands)."""
        self.aws.call_json("ecs", "StopServiceDeployment", {"serviceDeploymentArn": self.arn, "stopType": stop_type})

    # -- what a person watching wants to see ---------------------------------------------------------------------------
    def facets(self, record: dict[str, Any]) -> dict[str, str]:
        """What the record says now, one line per thing that can change: status, stage, each revision's tasks and
        traffic, each hook, the circuit breaker, the alarms."""
        out = {"status": str(record.get("status"))}
        if record.get("lifecycleStage"):
            out["stage"] = f"stage {record['lifecycleStage']}"
            if record["lifecycleStage"] == "BAKE_TIME" and self.bake_minutes:
                out["bake"] = self._bake_left()
        target = record.get("targetServiceRevision") or {}
        out["target"] = f"{self.revision(target.get('arn'))} (new): {_revision_line(target)}"
        for source in record.get("sourceServiceRevisions") or []:
            out[f"source {source.get('arn')}"] = f"{self.revision(source.get('arn'))} (old): {_revision_line(source)}"
        for hook in record.get("lifecycleHookDetails") or []:
            kind = "PAUSE" if hook.get("targetType") == "PAUSE" else str(hook.get("targetArn", "")).rsplit(":", 1)[-1]
            line = f"hook {hook.get('hookId')} ({kind}): {hook.get('status')}"
            if hook.get("status") == "AWAITING_ACTION":
                line += f", {hook.get('timeoutAction', 'ROLLBACK')} at {_when(hook.get('expiresAt'))} unless continued"
            out[f"hook {hook.get('hookId')}"] = line
        breaker = record.get("deploymentCircuitBreaker") or {}
        if breaker.get("status") not in (None, "DISABLED"):
            out["breaker"] = (
                f"circuit breaker {breaker.get('status')}: {breaker.get('failureCount', 0)} of "
                f"{breaker.get('threshold', '?')} failed tasks"
            )
        alarms = record.get("alarms") or {}
        if alarms.get("status") not in (None, "DISABLED"):
            triggered = alarms.get("triggeredAlarmNames") or []
            named = f": {', '.join(triggered)} in ALARM" if triggered else ""
            out["alarms"] = f"alarms {alarms.get('status')}{named}"
        return out

    def _bake_left(self) -> str:
        """``bake time 10 min: at most 7 min left``, counted from the first poll that saw BAKE_TIME (a poll that came
        late makes it an upper bound)."""
        now = time.monotonic()
        if self._bake_seen is None:
            self._bake_seen = now
        total = float(self.bake_minutes or 0)
        left = max(0.0, total - (now - self._bake_seen) / 60)
        return f"bake time {total:g} min: at most {math.ceil(left):d} min left"

    def report(self, record: dict[str, Any], progress: Progress) -> None:
        """Report what changed since the last report, and the target's task counts as the progress bar."""
        for key, line in self.facets(record).items():
            if key != "status" and self._shown.get(key) != line:
                progress(ProgressEvent("wait", "log", line))
                self._shown[key] = line
        target = record.get("targetServiceRevision") or {}
        running, wanted = int(target.get("runningTaskCount") or 0), int(target.get("requestedTaskCount") or 0)
        stage = f" ({record['lifecycleStage']})" if record.get("lifecycleStage") else ""
        progress(ProgressEvent("wait", "running", f"{running}/{wanted} running{stage}", done=running, total=wanted))

    def service_events(self, progress: Progress, since: Any = None) -> None:
        """New service events (DescribeServices), as ECS words them; those before ``since`` are history."""
        ecs = self.aws.client("ecs")
        (described,) = ecs.describe_services(cluster=self.cluster, services=[self.service])["services"] or [{}]
        events = sorted(described.get("events", []), key=lambda e: e["createdAt"])
        first = self._events is None
        for event in events:
            if (first and since is not None and event["createdAt"] >= since) or (
                not first and event["id"] not in (self._events or set())
            ):
                progress(ProgressEvent("wait", "log", event["message"]))
        self._events = (self._events or set()) | {e["id"] for e in events}

    # -- following ----------------------------------------------------------------------------------------------------
    def follow(
        self,
        *,
        progress: Progress = ignore,
        timeout: float = DEFAULT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        since: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        on_pause: PauseAnswer | None = None,
        until: Until = DEPLOYED,
    ) -> Verdict:
        """Poll the record until the deployment ends (or gets where ``until`` says) or ``timeout`` seconds pass,
        reporting what changes.

        ``on_pause`` is asked once about each PAUSE hook that awaits action (a :class:`Pause`): CONTINUE or ROLLBACK
        is sent to ECS (ContinueServiceDeployment), None leaves the hook waiting (for someone else, or for the
        caller's own :meth:`Pause.answer` later).
        """
        deadline = time.monotonic() + timeout
        asked: set[str] = set()
        while True:
            self.service_events(progress, since)
            record = self.read()
            self.report(record, progress)
            verdict = self.verdict(record)
            if verdict is not None:
                self.service_events(progress, since)  # ECS's closing words may have come after the first look
                if verdict.ok and until.kind == "stable":
                    return self._until_steady(verdict, progress, deadline, poll_interval, sleep)
                return verdict
            reached = until.reached(record)
            if reached is not None:
                return Verdict(Outcome.REACHED, reached, record)
            for hook in record.get("lifecycleHookDetails") or []:
                if on_pause is None or hook.get("status") != "AWAITING_ACTION" or hook.get("hookId") in asked:
                    continue
                asked.add(str(hook.get("hookId")))
                pause = Pause(self, hook)
                action = on_pause(pause)
                if action is not None:
                    pause.answer(action)
                    progress(ProgressEvent("wait", "log", f"hook {pause.hook_id}: {action} sent"))
            left = deadline - time.monotonic()
            if left <= 0:
                facets = self.facets(record)
                where = "; ".join(v for k, v in facets.items() if k in ("stage", "target")) or facets["status"]
                return Verdict(
                    Outcome.TIMED_OUT,
                    f"service deployment {self.arn.rsplit('/', 1)[-1]} did not finish within {timeout:g} s "
                    f"({record.get('status')}: {where}); it goes on in ECS",
                    record,
                )
            slow = record.get("lifecycleStage") in SLOW_STAGES or any(
                h.get("status") == "AWAITING_ACTION" for h in record.get("lifecycleHookDetails") or []
            )
            sleep(min(left, poll_interval * (SLOW_FACTOR if slow else 1.0)))

    def _until_steady(
        self,
        verdict: Verdict,
        progress: Progress,
        deadline: float,
        poll_interval: float,
        sleep: Callable[[float], None],
    ) -> Verdict:
        """After a SUCCESSFUL deployment: poll the service until it is steady (one deployment, COMPLETED, as many
        tasks running as desired: what ``aws ecs wait services-stable`` waits for)."""
        ecs = self.aws.client("ecs")
        while True:
            (described,) = ecs.describe_services(cluster=self.cluster, services=[self.service])["services"] or [{}]
            deployments = described.get("deployments") or []
            running, desired = described.get("runningCount", 0), described.get("desiredCount", 0)
            if (
                len(deployments) == 1
                and deployments[0].get("rolloutState") in (None, "COMPLETED")
                and (running == desired)
            ):
                progress(ProgressEvent("wait", "log", f"{self.service} is steady: {running}/{desired} tasks running"))
                return Verdict(verdict.outcome, f"{verdict.reason}; the service is steady", verdict.record)
            left = deadline - time.monotonic()
            if left <= 0:
                return Verdict(
                    Outcome.TIMED_OUT,
                    f"{verdict.reason}, but {self.service} was not steady in time: {len(deployments)} deployments, "
                    f"{running}/{desired} tasks running",
                    verdict.record,
                )
            sleep(min(left, poll_interval))


def _revision_line(revision: dict[str, Any]) -> str:
    line = (
        f"{revision.get('runningTaskCount', 0)}/{revision.get('requestedTaskCount', 0)} running, "
        f"{revision.get('pendingTaskCount', 0)} pending"
    )
    weights = [
        f"{kind} {revision[key]:g}%"
        for kind, key in (("production", "requestedProductionTrafficWeight"), ("test", "requestedTestTrafficWeight"))
        if revision.get(key) is not None
    ]
    return line + (f", {' / '.join(weights)} of the traffic" if weights else "")


def _monitors(record: dict[str, Any]) -> str:
    """What the rollback monitors saw, for a reason: the tripped circuit breaker's count, the alarms in ALARM."""
    said = []
    breaker = record.get("deploymentCircuitBreaker") or {}
    if breaker.get("status") == "TRIGGERED":
        said.append(
            f"circuit breaker: {breaker.get('failureCount', '?')} of {breaker.get('threshold', '?')} tasks failed"
        )
    triggered = (record.get("alarms") or {}).get("triggeredAlarmNames") or []
    if triggered:
        said.append(f"in ALARM: {', '.join(triggered)}")
    return f" ({'; '.join(said)})" if said else ""


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _when(value: Any) -> str:
    """An epoch-seconds timestamp as call_json returns it, in UTC."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC).strftime("%H:%M:%S UTC")
    return str(value)


__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TIMEOUT",
    "EXIT_CODES",
    "LIFECYCLE_STAGES",
    "Following",
    "Outcome",
    "Pause",
    "PauseAnswer",
    "Rollout",
    "Until",
    "Verdict",
    "strategy_of",
]
