"""Traffic-shifting deployments (BLUE_GREEN, LINEAR, CANARY) as ECS runs them, on the sandbox clock.

A deployment of a service whose ``deploymentConfiguration.strategy`` shifts traffic goes through ECS's lifecycle
stages, one :class:`Step` each: the green revision scales up beside the blue one (SCALE_UP: blue keeps all its tasks,
maximumPercent does not apply), takes the test listener's traffic (TEST_TRAFFIC_SHIFT, when the load balancer has a
test rule), then production traffic: all at once (BLUE_GREEN), a canary share and then the rest (CANARY), or equal
steps (LINEAR), each followed by its bake time. After the deployment's bake time, with both revisions running,
CLEAN_UP stops the blue tasks; the scheduler calls the deployment completed once green runs alone, as for a rolling
one, and the target group green was in takes production traffic from then on.

Lifecycle hooks run at the stages they name, one after the other: a Lambda function (invoked in a child process by
:class:`~opskit.sandbox.lambdas.runner.LambdaRunner`, again after ``callBackDelay`` while it answers IN_PROGRESS) or a
PAUSE that waits for ContinueServiceDeployment; a hook that fails, a PAUSE rolled back or timed out with action
ROLLBACK, the circuit breaker, an alarm or StopServiceDeployment roll the deployment back: traffic goes back to blue at
once, blue is the PRIMARY again and green's tasks go (ROLLBACK_IN_PROGRESS, then ROLLBACK_SUCCESSFUL).

Everything here runs under the scheduler's lock, as events of its queue; a hook's answer arrives from the Lambda
runner's thread and is queued as an event due when it arrives.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opskit.sandbox.clock import from_epoch
from opskit.sandbox.ecs.records import (
    ACTIVE,
    FAILED,
    IN_PROGRESS,
    PRIMARY,
    SD_IN_PROGRESS,
    SD_ROLLBACK_IN_PROGRESS,
    SD_ROLLBACK_SUCCESSFUL,
    Deployment,
    HookRun,
    Service,
    ServiceDeployment,
    Task,
    Traffic,
)
from opskit.sandbox.elb import LoadBalancing, LoadBalancingError
from opskit.sandbox.lambdas.hooks import DEFAULT_CALLBACK_DELAY, hook_event, hook_outcome
from opskit.sandbox.lambdas.runner import InvokeResult, LambdaRunner

if TYPE_CHECKING:
    from opskit.sandbox.ecs.scheduler import Scheduler

SHIFTING = ("BLUE_GREEN", "LINEAR", "CANARY")
DEFAULT_HOOK_TIMEOUT_MINUTES = 1440
STAGE_SECONDS = 10.0  # sandbox seconds ECS takes from one lifecycle stage to the next
HEALTH_CHECK_GRACE = 10.0  # sandbox seconds from a task's start until its target passes ELB's health checks


@dataclass(frozen=True)
class Step:
    stage: str  # what DescribeServiceDeployments shows as the lifecycleStage meanwhile
    hooks: str | None = None  # the hook stage whose hooks run in this step
    shift: tuple[str, float] | None = None  # ("test" or "production", green's share from now on, percent)
    scale_up: bool = False  # the green revision's tasks start; the step waits until they all run healthy
    bake: float = 0.0  # sandbox seconds to wait once the step's hooks are done
    clean: bool = False  # the blue revision's tasks stop; the step waits until they are gone


def plan(strategy: str, config: dict[str, Any], *, test_rule: bool, reconcile: bool) -> list[Step]:
    """ECS's stages for one deployment of ``strategy`` under ``config`` (a validated deploymentConfiguration)."""
    steps = [Step("RECONCILE_SERVICE", "RECONCILE_SERVICE")] if reconcile else []
    steps += [
        Step("PRE_SCALE_UP", "PRE_SCALE_UP"),
        Step("SCALE_UP", scale_up=True),
        Step("POST_SCALE_UP", "POST_SCALE_UP"),
    ]
    if test_rule:
        steps += [
            Step("TEST_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT", shift=("test", 100.0)),
            Step("POST_TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT"),
        ]
    for share, bake in production_steps(strategy, config):
        steps += [
            Step("PRODUCTION_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"),
            Step("PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", shift=("production", share), bake=bake),
        ]
    steps += [
        Step("POST_PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"),
        Step("BAKE_TIME", bake=60.0 * float(config.get("bakeTimeInMinutes") or 0)),
        Step("CLEAN_UP", clean=True),
    ]
    return steps


def production_steps(strategy: str, config: dict[str, Any]) -> list[tuple[float, float]]:
    """(green's share of production traffic, sandbox seconds of bake after it) for each production shift: no bake
    after the last one, which the deployment's own bake time follows."""
    if strategy == "CANARY":
        canary = config.get("canaryConfiguration") or {}
        share = float(canary.get("canaryPercent", 5.0))
        return (
            [(share, 60.0 * float(canary.get("canaryBakeTimeInMinutes", 10))), (100.0, 0.0)]
            if share < 100
            else [(100.0, 0.0)]
        )
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        step, bake = float(linear.get("stepPercent", 10.0)), 60.0 * float(linear.get("stepBakeTimeInMinutes", 6))
        shares, share = [], 0.0
        while share < 100.0:
            share = min(100.0, round(share + step, 1))
            shares.append((share, bake if share < 100.0 else 0.0))
        return shares
    return [(100.0, 0.0)]


class TrafficShifts:
    """The traffic-shifting deployments of one scheduler."""

    def __init__(self, scheduler: Scheduler, load_balancing: LoadBalancing | None, lambdas: LambdaRunner | None):
        self.scheduler = scheduler
        self.load_balancing = load_balancing
        self.lambdas = lambdas

    # -- what the scheduler asks ------------------------------------------------------------------------------------
    def begin(self, record: ServiceDeployment, blue: Deployment, at: float) -> None:
        service, green = record.service, record.target
        config = record.deployment_configuration
        strategy = str(config.get("strategy"))
        load_balancer = service.params["loadBalancers"][0]
        advanced = load_balancer["advancedConfiguration"]
        blue_group = blue.target_group or load_balancer["targetGroupArn"]
        pair = (load_balancer["targetGroupArn"], advanced["alternateTargetGroupArn"])
        green_group = pair[1] if blue_group == pair[0] else pair[0]
        green.target_group = green_group
        active = [d for d in record.sources if d.live_tasks]
        record.traffic = Traffic(
            strategy=strategy,
            green=green,
            blue=blue,
            load_balancer=load_balancer,
            blue_group=blue_group,
            green_group=green_group,
            steps=plan(strategy, config, test_rule=bool(advanced.get("testListenerRule")), reconcile=len(active) > 1),
        )
        self._next(record, at)

    def hold(self, service: Service) -> tuple[bool, bool] | None:
        """For the scheduler's reconcile: (may green launch, must blue keep its tasks) while a deployment shifts
        traffic, else None (a rolling deployment, or a rollback: the usual rules)."""
        record = service.primary.record if service.deployments else None
        traffic = record.traffic if record is not None else None
        if record is None or traffic is None or traffic.rolling_back or service.primary is not traffic.green:
            return None
        if record.status != SD_IN_PROGRESS:
            return None
        scaled = any(step.scale_up for step in traffic.steps[: traffic.step + 1])
        return scaled, not traffic.cleaning

    def check(self, service: Service, at: float) -> None:
        """Something changed (a task ran, got healthy, stopped): move on a step that was waiting for it, and notice a
        rollback that is over."""
        records = {id(d.record): d.record for d in service.deployments if d.record is not None}
        for record in records.values():
            traffic = record.traffic
            if traffic is None:
                continue
            if traffic.rolling_back and record.status == SD_ROLLBACK_IN_PROGRESS and not traffic.green.live_tasks:
                when = from_epoch(at)
                record.status, record.finished_at, record.updated_at = SD_ROLLBACK_SUCCESSFUL, when, when
                service.event(when, f"(deployment {traffic.green.id}) rollback completed.")
            elif record.status == SD_IN_PROGRESS and traffic.phase == "waiting":
                self._advance(record, at)

    def roll_back(self, record: ServiceDeployment, at: float, reason: str) -> None:
        """Traffic back to blue at once, blue the PRIMARY again, green's tasks stopping."""
        traffic, service = record.traffic, record.service
        assert traffic is not None
        if traffic.rolling_back or record.status != SD_IN_PROGRESS:
            return
        when = from_epoch(at)
        traffic.rolling_back, traffic.phase = True, "rolled back"
        record.status, record.status_reason, record.updated_at = SD_ROLLBACK_IN_PROGRESS, reason, when
        record.rollback = {"reason": reason, "startedAt": when, "serviceRevisionArn": traffic.blue.revision_arn}
        self._shift(record, production=0.0, test=0.0)
        green, blue = traffic.green, traffic.blue
        if green.rollout_state == IN_PROGRESS:
            green.rollout_state, green.rollout_state_reason = FAILED, reason
        green.status, green.updated_at = ACTIVE, when
        if blue in service.deployments:
            service.deployments.remove(blue)
        service.deployments.insert(0, blue)
        blue.status, blue.record, blue.updated_at = PRIMARY, record, when
        service.steady = False
        service.event(when, f"rolling back to deployment {blue.id}: {reason}")
        self.scheduler.poke(service, at)

    def continue_hook(self, record: ServiceDeployment, run: HookRun, action: str, at: float) -> None:
        """ContinueServiceDeployment on a PAUSE hook awaiting action."""
        if action == "ROLLBACK":
            run.status = "FAILED"
            self.roll_back(record, at, f"Lifecycle hook {run.hook_id} was rolled back by ContinueServiceDeployment.")
        else:
            run.status = "SUCCEEDED"
            self._hook_done(record, at)

    # -- targets ----------------------------------------------------------------------------------------------------
    def task_running(self, task: Task, at: float) -> None:
        group = task.deployment.target_group
        load_balancers = task.service.params.get("loadBalancers") or []
        if self.load_balancing is None or group is None or not load_balancers or not task.private_ip:
            return
        port = int(load_balancers[0].get("containerPort") or 80)
        try:
            self.load_balancing.register(group, task.private_ip, port)
        except LoadBalancingError:
            return  # the target group is gone: the task runs, nothing routes to it
        task.target_group = group

        def healthy(at: float) -> None:
            if task.target_group is not None and task.live and task.healthy and self.load_balancing is not None:
                self.load_balancing.set_health(group, task.private_ip, "healthy")

        self.scheduler.schedule(at + HEALTH_CHECK_GRACE, healthy)

    def task_stopping(self, task: Task) -> None:
        if self.load_balancing is not None and task.target_group is not None:
            self.load_balancing.set_health(task.target_group, task.private_ip, "draining")

    def task_stopped(self, task: Task) -> None:
        if self.load_balancing is not None and task.target_group is not None:
            self.load_balancing.deregister(task.target_group, task.private_ip)
            task.target_group = None

    # -- the steps --------------------------------------------------------------------------------------------------
    def _next(self, record: ServiceDeployment, at: float) -> None:
        """On to the next step: at once for the first, else a few seconds later (ECS moves from one stage to the
        next in its own time, so that each stage is there to see)."""
        traffic = record.traffic
        assert traffic is not None
        traffic.step += 1
        if traffic.step >= len(traffic.steps):
            traffic.phase = "done"  # CLEAN_UP is over: the scheduler completes the deployment as green runs alone
            return
        traffic.phase, traffic.hook = "enter", 0
        if traffic.step == 0:
            self._advance(record, at)
            return
        number = traffic.step
        self.scheduler.schedule(at + STAGE_SECONDS, lambda at: self._entered(record, number, at))

    def _entered(self, record: ServiceDeployment, number: int, at: float) -> None:
        traffic = record.traffic
        if traffic is not None and traffic.step == number and traffic.phase == "enter":
            self._advance(record, at)

    def _advance(self, record: ServiceDeployment, at: float) -> None:
        traffic, service = record.traffic, record.service
        assert traffic is not None
        if traffic.rolling_back or record.status != SD_IN_PROGRESS:
            return
        step = traffic.steps[traffic.step]
        if traffic.phase == "enter":
            traffic.stage = step.stage
            record.updated_at = from_epoch(at)
            if step.shift is not None:
                kind, share = step.shift
                try:
                    self._shift(record, **{kind: share})
                except LoadBalancingError as exc:
                    self.roll_back(record, at, str(exc))
                    return
            if step.clean:
                traffic.cleaning = True
                service.production_group = traffic.green_group
            if step.scale_up or step.clean:
                self.scheduler.poke(service, at)
            traffic.phase = "waiting"
        if traffic.phase == "waiting":
            if step.scale_up and not _all_healthy(traffic.green):
                return
            if step.clean and traffic.blue.live_tasks:
                return
            traffic.phase = "hooks"
        if traffic.phase == "hooks":
            hooks = self._hooks(record, step.hooks)
            if traffic.hook < len(hooks):
                traffic.phase = "hook"
                self._run_hook(record, hooks[traffic.hook], step.hooks or step.stage, at)
                return
            if step.bake > 0:
                traffic.phase = "baking"
                number = traffic.step
                self.scheduler.schedule(at + step.bake, lambda at: self._baked(record, number, at))
                return
            self._next(record, at)

    def _baked(self, record: ServiceDeployment, number: int, at: float) -> None:
        traffic = record.traffic
        if traffic is not None and traffic.step == number and traffic.phase == "baking":
            self._next(record, at)

    def _shift(self, record: ServiceDeployment, *, production: float | None = None, test: float | None = None) -> None:
        traffic = record.traffic
        assert traffic is not None
        if production is not None:
            traffic.production = production
        if test is not None:
            traffic.test = test
        if self.load_balancing is None:
            return
        blue, green = traffic.blue_group, traffic.green_group
        advanced = traffic.load_balancer["advancedConfiguration"]
        self.load_balancing.shift(
            traffic.load_balancer,
            production={blue: 100.0 - traffic.production, green: traffic.production},
            test={blue: 100.0 - traffic.test, green: traffic.test} if advanced.get("testListenerRule") else None,
        )

    # -- hooks ------------------------------------------------------------------------------------------------------
    @staticmethod
    def _hooks(record: ServiceDeployment, stage: str | None) -> list[dict[str, Any]]:
        if stage is None:
            return []
        hooks = record.deployment_configuration.get("lifecycleHooks") or []
        return [h for h in hooks if stage in (h.get("lifecycleStages") or [])]

    def _run_hook(self, record: ServiceDeployment, hook: dict[str, Any], stage: str, at: float) -> None:
        traffic = record.traffic
        assert traffic is not None
        timeout = hook.get("timeoutConfiguration") or {}
        minutes = float(timeout.get("timeoutInMinutes") or DEFAULT_HOOK_TIMEOUT_MINUTES)
        pause = hook.get("targetType") == "PAUSE"
        run = HookRun(
            hook_id=uuid.uuid4().hex,
            target_type=str(hook.get("targetType") or "AWS_LAMBDA"),
            target_arn=None if pause else hook.get("hookTargetArn"),
            stage=stage,
            status="AWAITING_ACTION" if pause else "IN_PROGRESS",
            timeout_action=str(timeout.get("action") or "ROLLBACK"),
            expires_at=from_epoch(at) + timedelta(minutes=minutes),
            details=hook.get("hookDetails"),
        )
        traffic.hooks.append(run)
        record.service.event(
            from_epoch(at), f"(service deployment {record.arn}) lifecycle hook {run.hook_id} at {stage}."
        )
        self.scheduler.schedule(at + 60.0 * minutes, lambda at: self._expired(record, run, at))
        if not pause:
            self._invoke(record, run, at)

    def _invoke(self, record: ServiceDeployment, run: HookRun, at: float) -> None:
        traffic = record.traffic
        assert traffic is not None and run.target_arn is not None
        if self.lambdas is None:
            self._hook_failed(record, run, at, "the sandbox runs no Lambda functions")
            return
        event = hook_event(
            lifecycle_stage=run.stage,
            service_deployment_arn=record.arn,
            service_arn=record.service.arn,
            target_service_revision_arn=traffic.green.revision_arn,
            test_traffic_weights={
                traffic.blue.revision_arn: 100.0 - traffic.test,
                traffic.green.revision_arn: traffic.test,
            },
            production_traffic_weights={
                traffic.blue.revision_arn: 100.0 - traffic.production,
                traffic.green.revision_arn: traffic.production,
            },
            hook_details=run.details,
            execution_id=run.hook_id,
        )
        scheduler = self.scheduler

        def answered(result: InvokeResult) -> None:  # the runner's thread: queued as an event due now
            with scheduler.lock:
                if not scheduler.closed:
                    scheduler.schedule(scheduler.clock.timestamp(), lambda at: self._answered(record, run, result, at))

        self.lambdas.start(run.target_arn, event, answered)

    def _answered(self, record: ServiceDeployment, run: HookRun, result: InvokeResult, at: float) -> None:
        if run.status != "IN_PROGRESS":
            return  # timed out meanwhile, or the deployment moved on
        outcome = hook_outcome(result)
        if outcome.status == "SUCCEEDED":
            run.status = "SUCCEEDED"
            self._hook_done(record, at)
        elif outcome.status == "IN_PROGRESS":
            run.details = outcome.hook_details if outcome.hook_details is not None else run.details
            delay = float(outcome.callback_delay or DEFAULT_CALLBACK_DELAY)
            self.scheduler.schedule(at + delay, lambda at: self._again(record, run, at))
        else:
            self._hook_failed(record, run, at, outcome.reason or "the hook's function answered FAILED")

    def _again(self, record: ServiceDeployment, run: HookRun, at: float) -> None:
        if run.status == "IN_PROGRESS" and record.status == SD_IN_PROGRESS:
            self._invoke(record, run, at)

    def _hook_failed(self, record: ServiceDeployment, run: HookRun, at: float, why: str) -> None:
        run.status, run.reason = "FAILED", why
        self.roll_back(record, at, f"Lifecycle hook {run.hook_id} at {run.stage} failed: {why}")

    def _expired(self, record: ServiceDeployment, run: HookRun, at: float) -> None:
        if run.status not in ("AWAITING_ACTION", "IN_PROGRESS") or record.status != SD_IN_PROGRESS:
            return
        run.status = "TIMED_OUT"
        if run.timeout_action == "CONTINUE":
            self._hook_done(record, at)
        else:
            self.roll_back(record, at, f"Lifecycle hook {run.hook_id} at {run.stage} timed out.")

    def _hook_done(self, record: ServiceDeployment, at: float) -> None:
        traffic = record.traffic
        if traffic is None or traffic.phase != "hook":
            return
        traffic.hook += 1
        traffic.phase = "hooks"
        self._advance(record, at)


def _all_healthy(deployment: Deployment) -> bool:
    live = deployment.live_tasks
    return len(live) >= deployment.desired_count and all(t.healthy for t in live)
