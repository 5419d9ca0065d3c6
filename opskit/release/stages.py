"""What a service deployment will go through, read off the service before it starts: its stages in order, the
lifecycle hooks at each, the bake times, the alarms and the circuit breaker, and the shortest time it can take.

ECS runs a ROLLING deployment as one stage (tasks replaced within minimumHealthyPercent and maximumPercent of the
desired count). BLUE_GREEN, LINEAR and CANARY go through ECS's lifecycle stages (the lifecycleStage a service
deployment reports): RECONCILE_SERVICE (only with more than one service revision active), PRE_SCALE_UP, SCALE_UP,
POST_SCALE_UP, TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT (once for BLUE_GREEN; the canary
share then the rest for CANARY; every step for LINEAR, each followed by its bake), POST_PRODUCTION_TRAFFIC_SHIFT,
BAKE_TIME and CLEAN_UP. Hooks attach to hook stages, which are not quite those: PRE_PRODUCTION_TRAFFIC_SHIFT is
never reported as a stage (its hooks run as each production shift begins), and SCALE_UP, BAKE_TIME and CLEAN_UP take
no hooks. Hooks are read for those three strategies only, the ones whose stages they attach to.

>>> plan = rollout_plan(described_service)        # doctest: +SKIP
>>> [s.name for s in plan.stages][:3], plan.shortest
(['RECONCILE_SERVICE', 'PRE_SCALE_UP', 'SCALE_UP'], 'at least 10 min (bake time 10 min)')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opskit.release.rollout import LIFECYCLE_STAGES, strategy_of

# ECS's names (botocore's ecs model: DeploymentLifecycleHookStage); the stages themselves are rollout's.
HOOK_STAGES = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
)
# ECS's defaults where the configuration leaves a value out (the ecs model's documentation).
DEFAULT_MINIMUM_HEALTHY_PERCENT = 100
DEFAULT_MAXIMUM_PERCENT = 200
DEFAULT_STEP_PERCENT, DEFAULT_STEP_BAKE_MINUTES = 10.0, 6
DEFAULT_CANARY_PERCENT, DEFAULT_CANARY_BAKE_MINUTES = 5.0, 10
DEFAULT_HOOK_TIMEOUT_MINUTES, DEFAULT_HOOK_TIMEOUT_ACTION = 1440, "ROLLBACK"
DEFAULT_THRESHOLD = ("BOUNDED_PERCENT", 50)  # the circuit breaker's: half the desired count, 3 to 200


@dataclass(frozen=True)
class Hook:
    """A lifecycle hook as it runs at one stage."""

    kind: str  # AWS_LAMBDA or PAUSE
    target: str  # the Lambda function's name (its ARN when it is not a function's), or PAUSE
    hook_stage: str  # the hook stage it is configured at: PRE_PRODUCTION_TRAFFIC_SHIFT runs as a shift begins
    timeout_minutes: int | None = None  # as configured (None: not configured, ECS's default 1440 applies)
    timeout_action: str | None = None  # as configured (None: not configured, ECS's default ROLLBACK applies)

    def describe(self) -> str:
        what = f"Lambda hook {self.target}" if self.kind == "AWS_LAMBDA" else "PAUSE hook until continued"
        if self.hook_stage == "PRE_PRODUCTION_TRAFFIC_SHIFT":
            what = f"before the shift: {what}"
        if self.timeout_minutes is not None or self.timeout_action is not None:
            minutes = self.timeout_minutes or DEFAULT_HOOK_TIMEOUT_MINUTES
            what += f" (timeout {minutes} min, then {self.timeout_action or DEFAULT_HOOK_TIMEOUT_ACTION})"
        return what

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Stage:
    """One stage of the deployment, in the order ECS goes through them."""

    name: str  # the lifecycleStage ECS reports meanwhile; ROLLING for a rolling deployment, which reports none
    detail: str  # what happens in it
    hooks: tuple[Hook, ...] = ()  # in the order they run
    bake_seconds: int = 0  # how long ECS waits in it once its hooks are done
    production_percent: float | None = None  # the new revision's share of production traffic after it
    note: str = ""  # when ECS may not go through it, or does nothing in it

    def describe(self) -> str:
        return "; ".join(part for part in (self.detail, *(h.describe() for h in self.hooks), self.note) if part)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "hooks": [h.to_dict() for h in self.hooks]}


@dataclass(frozen=True)
class Alarms:
    names: tuple[str, ...] = ()
    enabled: bool = False
    rollback: bool = False

    def describe(self) -> str:
        if not self.names:
            return "none"
        names = ", ".join(self.names)
        if not self.enabled:
            return f"{names} (not enabled: not watched)"
        return f"{names}, rollback {'on' if self.rollback else 'off'}"


@dataclass(frozen=True)
class CircuitBreaker:
    enabled: bool = False
    rollback: bool = False
    threshold: int | None = None  # failed tasks that trip it, for the service's desired count now
    threshold_type: str | None = None  # thresholdConfiguration as set (None: not set, ECS's default applies)
    threshold_value: int | None = None
    reset_on_healthy_task: bool | None = None  # as set (None: not set, true by default)

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        line = f"rollback {'on' if self.rollback else 'off'}, trips at {_count(self.threshold or 0, 'failed task')}"
        if self.threshold_type is not None:
            line += f" ({self.threshold_type} {self.threshold_value})"
        if self.reset_on_healthy_task is False:
            line += ", never reset by a healthy task"
        return line


@dataclass(frozen=True)
class RolloutPlan:
    """The deployment a release starts, as the service's deploymentConfiguration says it will go."""

    strategy: str
    stages: tuple[Stage, ...]
    alarms: Alarms
    circuit_breaker: CircuitBreaker

    @property
    def shortest_seconds(self) -> int:
        return shortest_seconds(self.stages)

    @property
    def shortest(self) -> str:
        return shortest_text(self.stages, self.strategy)

    @property
    def staged(self) -> bool:
        """Does the deployment go through ECS's lifecycle stages (every strategy but ROLLING)?"""
        return self.strategy != "ROLLING"

    def rows(self) -> list[tuple[str, str, str]]:
        """(step, action, detail) rows: one per stage, then the alarms and the circuit breaker."""
        return [
            *((s.name, "stage", s.describe()) for s in self.stages),
            ("alarms", "monitor", self.alarms.describe()),
            ("circuit breaker", "monitor", self.circuit_breaker.describe()),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "stages": [s.to_dict() for s in self.stages],
            "alarms": dict(self.alarms.__dict__, names=list(self.alarms.names)),
            "circuit_breaker": dict(self.circuit_breaker.__dict__),
            "shortest_seconds": self.shortest_seconds,
            "shortest": self.shortest,
        }


def rollout_plan(service: dict[str, Any]) -> RolloutPlan:
    """The rollout a new deployment of ``service`` (DescribeServices, raw: an older botocore drops the newer
    fields) goes through; refuses a service whose deployments ECS does not run, as :func:`strategy_of` does."""
    config = service.get("deploymentConfiguration") or {}
    return RolloutPlan(
        strategy=strategy_of(service),
        stages=rollout_stages(service),
        alarms=_alarms(config),
        circuit_breaker=_circuit_breaker(config, int(service.get("desiredCount") or 0)),
    )


def rollout_stages(service: dict[str, Any]) -> tuple[Stage, ...]:
    """The stages a new deployment of ``service`` goes through, in order, each with the hooks that run at it."""
    strategy = strategy_of(service)
    config = service.get("deploymentConfiguration") or {}
    desired = int(service.get("desiredCount") or 0)
    if strategy == "ROLLING":
        return (_rolling(config, desired),)
    hooks = _hooks(config)

    def at(*hook_stages: str) -> tuple[Hook, ...]:
        return tuple(h for stage in hook_stages for h in hooks if h.hook_stage == stage)

    active = len(service.get("currentServiceRevisions") or service.get("deployments") or [])
    reconcile_note = "" if active > 1 else f"only when more than one is active ({active} now)"
    no_test = "" if _test_traffic(service) else "no test listener rule: no test traffic to shift"
    stages = [
        Stage(
            "RECONCILE_SERVICE",
            "ECS reconciles the service revisions that are active",
            at("RECONCILE_SERVICE"),
            note=reconcile_note,
        ),
        Stage("PRE_SCALE_UP", "before the new revision starts", at("PRE_SCALE_UP")),
        Stage("SCALE_UP", f"the new revision starts {_count(desired, 'task')} beside the old one's, no traffic yet"),
        Stage("POST_SCALE_UP", "the new revision runs; the old one has all traffic", at("POST_SCALE_UP")),
        Stage(
            "TEST_TRAFFIC_SHIFT", "test traffic to the new revision, 0 -> 100%", at("TEST_TRAFFIC_SHIFT"), note=no_test
        ),
        Stage(
            "POST_TEST_TRAFFIC_SHIFT",
            "the new revision has the test traffic",
            at("POST_TEST_TRAFFIC_SHIFT"),
            note=no_test,
        ),
    ]
    before = 0.0
    for share, bake in _production_shifts(strategy, config):
        detail = f"production traffic to the new revision, {before:g} -> {share:g}%"
        if bake:
            detail += f", then {bake} min bake"
        hooks_here = at("PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
        stages.append(Stage("PRODUCTION_TRAFFIC_SHIFT", detail, hooks_here, 60 * bake, production_percent=share))
        before = share
    post = at("POST_PRODUCTION_TRAFFIC_SHIFT")
    stages.append(Stage("POST_PRODUCTION_TRAFFIC_SHIFT", "the new revision has all production traffic", post))
    bake = _minutes(config.get("bakeTimeInMinutes"))
    baking = f"{bake} min with both revisions running" if bake else "no bake time: the old revision goes at once"
    stages.append(Stage("BAKE_TIME", baking, bake_seconds=60 * bake))
    stages.append(Stage("CLEAN_UP", "the old revision's tasks stop"))
    return tuple(stages)


def shortest_seconds(stages: tuple[Stage, ...]) -> int:
    """The shortest time the deployment can take that can be known before it starts: its bake times.

    No hook has a minimum that can be known: a Lambda hook answers when it answers, a PAUSE hook goes on when it is
    continued (its timeout bounds it above, not below). Tasks starting and passing health checks add to it too.
    """
    return sum(stage.bake_seconds for stage in stages)


def shortest_text(stages: tuple[Stage, ...], strategy: str = "") -> str:
    """:func:`shortest_seconds` in words, with what it counts ("at least 13 min (3 step bakes of 1 min, bake time
    10 min)"), and the PAUSE hooks, which wait as long as it takes someone to continue them."""
    counted = []
    steps = [s.bake_seconds for s in stages if s.name == "PRODUCTION_TRAFFIC_SHIFT" and s.bake_seconds]
    if steps and strategy == "CANARY":
        counted.append(f"canary bake {_min(sum(steps))}")
    elif steps:
        each = sorted({_min(seconds) for seconds in steps})
        counted.append(f"{len(steps)} step bake{'s' if len(steps) > 1 else ''} of {' or '.join(each)}")
    counted += [f"bake time {_min(s.bake_seconds)}" for s in stages if s.name == "BAKE_TIME" and s.bake_seconds]
    pauses = sum(1 for s in stages for h in s.hooks if h.kind == "PAUSE" and not s.note)
    waits = "" if not pauses else "the PAUSE hook's wait" if pauses == 1 else f"{pauses} PAUSE hooks' waits"
    total = shortest_seconds(stages)
    if not total:
        return "no bake time" + (f", plus {waits}" if waits else "")
    return f"at least {_min(total)} ({', '.join(counted)})" + (f", plus {waits}" if waits else "")


def _min(seconds: int) -> str:
    return f"{seconds / 60:g} min"


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _rolling(config: dict[str, Any], desired: int) -> Stage:
    low = config.get("minimumHealthyPercent", DEFAULT_MINIMUM_HEALTHY_PERCENT)
    high = config.get("maximumPercent", DEFAULT_MAXIMUM_PERCENT)
    detail = f"{_count(desired, 'task')} replaced, {low}-{high}% of them running"
    early = config.get("earlySuccessCriteria") or {}
    if early.get("enable"):
        cleanup = str(early.get("sourceServiceRevisionCleanup", "")).lower()
        detail += f"; done once {early.get('healthyPercent')}% run healthy (early success, {cleanup} clean-up)"
    return Stage("ROLLING", detail)


def _hooks(config: dict[str, Any]) -> list[Hook]:
    out = []
    for hook in config.get("lifecycleHooks") or []:
        timeout = hook.get("timeoutConfiguration") or {}
        kind = str(hook.get("targetType") or "AWS_LAMBDA")  # an untyped hook is a Lambda's (older models)
        target = "PAUSE" if kind == "PAUSE" else _function_name(str(hook.get("hookTargetArn") or "?"))
        for stage in hook.get("lifecycleStages") or []:
            minutes = timeout.get("timeoutInMinutes")
            out.append(Hook(kind, target, str(stage), None if minutes is None else int(minutes), timeout.get("action")))
    return out


def _function_name(arn: str) -> str:
    """arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] -> NAME[:QUALIFIER]; anything else as it is."""
    parts = arn.split(":")
    return ":".join(parts[6:]) if len(parts) >= 7 and parts[5] == "function" else arn


def _test_traffic(service: dict[str, Any]) -> bool:
    """Is there test traffic to shift: a load balancer's test listener rule, or Service Connect test rules?"""
    for balancer in service.get("loadBalancers") or []:
        if (balancer.get("advancedConfiguration") or {}).get("testListenerRule"):
            return True
    for deployment in service.get("deployments") or []:
        for entry in (deployment.get("serviceConnectConfiguration") or {}).get("services") or []:
            if any(alias.get("testTrafficRules") for alias in entry.get("clientAliases") or []):
                return True
    return False


def _production_shifts(strategy: str, config: dict[str, Any]) -> list[tuple[float, int]]:
    """(the new revision's share of production traffic, minutes of bake after it) for each production shift; none
    after the last, which the deployment's own bake time follows."""
    if strategy == "CANARY":
        canary = config.get("canaryConfiguration") or {}
        share = float(canary.get("canaryPercent", DEFAULT_CANARY_PERCENT))
        bake = _minutes(canary.get("canaryBakeTimeInMinutes", DEFAULT_CANARY_BAKE_MINUTES))
        return [(share, bake), (100.0, 0)] if share < 100 else [(100.0, 0)]
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        step = float(linear.get("stepPercent", DEFAULT_STEP_PERCENT))
        bake = _minutes(linear.get("stepBakeTimeInMinutes", DEFAULT_STEP_BAKE_MINUTES))
        shares, share = [], 0.0
        while share < 100.0:
            share = min(100.0, round(share + step, 1))
            shares.append((share, bake if share < 100.0 else 0))
        return shares
    return [(100.0, 0)]


def _minutes(value: Any) -> int:
    return int(value or 0)


def _alarms(config: dict[str, Any]) -> Alarms:
    alarms = config.get("alarms") or {}
    return Alarms(
        names=tuple(str(n) for n in alarms.get("alarmNames") or ()),
        enabled=bool(alarms.get("enable")),
        rollback=bool(alarms.get("rollback")),
    )


def _circuit_breaker(config: dict[str, Any], desired: int) -> CircuitBreaker:
    breaker = config.get("deploymentCircuitBreaker") or {}
    if not breaker.get("enable"):
        return CircuitBreaker()
    threshold = breaker.get("thresholdConfiguration") or {}
    kind = str(threshold.get("type", DEFAULT_THRESHOLD[0]))
    value = int(threshold.get("value", DEFAULT_THRESHOLD[1]))
    if kind == "COUNT":
        count = max(1, value)
    else:
        share = -(-desired * value // 100)  # that percent of the desired count, rounded up
        count = max(1, share) if kind == "UNBOUNDED_PERCENT" else min(200, max(3, share))
    reset = breaker.get("resetOnHealthyTask")
    return CircuitBreaker(
        enabled=True,
        rollback=bool(breaker.get("rollback")),
        threshold=count,
        threshold_type=threshold.get("type"),
        threshold_value=threshold.get("value"),
        reset_on_healthy_task=None if reset is None else bool(reset),
    )


__all__ = [
    "HOOK_STAGES",
    "LIFECYCLE_STAGES",
    "Alarms",
    "CircuitBreaker",
    "Hook",
    "RolloutPlan",
    "Stage",
    "rollout_plan",
    "rollout_stages",
    "shortest_seconds",
    "shortest_text",
]
