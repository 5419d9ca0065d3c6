"""Deployments over BLUE_GREEN, LINEAR and CANARY with plain boto3: the lifecycle stages, the listener weights, the
tasks and the target groups at each stage, lifecycle hooks (PAUSE and Lambda), alarms and every kind of rollback.

Tasks run simulated (no Docker): images "exist" when ECR's model holds them. The clock all but stands still (a
sandbox second takes over a quarter of an hour) and the tests move it with ``clock.advance``, so every stage is seen.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from opskit.errors import AwsError
from opskit.sandbox import Sandbox
from opskit.sandbox.alb import AlbSetup, make_alb
from tests.sandbox.elb_setup import health, weights
from tests.sandbox.test_services import client_models, manifest

ROLE = "arn:aws:iam::{account}:role/ecsLifecycleHooks"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=0.001, docker=False, registry=False, throttle=False) as sb:
        ecr = sb.client("ecr")
        ecr.create_repository(repositoryName="web")
        for tag in ("v1", "v2"):
            ecr.put_image(repositoryName="web", imageManifest=manifest(tag), imageTag=tag)
        sb.client("ecs").create_cluster(clusterName="prod")
        yield sb


@pytest.fixture
def alb(sandbox: Sandbox) -> AlbSetup:
    return make_alb(sandbox)


def revision(sandbox: Sandbox, tag: str) -> str:
    image = f"{sandbox.registry_host}/web:{tag}"
    container = {"name": "web", "image": image, "memory": 64, "portMappings": [{"containerPort": 8080}]}
    registered = sandbox.client("ecs").register_task_definition(family="web", containerDefinitions=[container])
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def create(sandbox: Sandbox, alb: AlbSetup, config: dict[str, Any], desired: int = 2) -> str:
    """web on v1, its first rollout done; returns v2's ARN, to deploy."""
    ecs, v1 = sandbox.client("ecs"), revision(sandbox, "v1")
    ecs.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition=v1,
        desiredCount=desired,
        loadBalancers=[alb.load_balancer()],
        deploymentConfiguration=config,
    )
    play(sandbox, 120)
    assert service(sandbox)["deployments"][0]["rolloutState"] == "COMPLETED"
    return revision(sandbox, "v2")


def service(sandbox: Sandbox) -> dict[str, Any]:
    return dict(sandbox.client("ecs").describe_services(cluster="prod", services=["web"])["services"][0])


def record(sandbox: Sandbox, arn: str | None = None) -> dict[str, Any]:
    arn = arn or service(sandbox)["currentServiceDeployment"]
    return dict(
        sandbox.client("ecs").describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]
    )


def play(sandbox: Sandbox, seconds: float, step: float = 5.0) -> None:
    for _ in range(int(seconds / step)):
        sandbox.clock.advance(step)


def play_recording(sandbox: Sandbox, arn: str, seconds: float, step: float = 5.0) -> list[dict[str, Any]]:
    """Move the clock ``seconds`` on in steps; what the service deployment looked like after each, deduplicated."""
    seen: list[dict[str, Any]] = []
    for _ in range(int(seconds / step)):
        sandbox.clock.advance(step)
        now = record(sandbox, arn)
        target = now["targetServiceRevision"]
        brief = {
            "stage": now.get("lifecycleStage"),
            "status": now["status"],
            "production": target.get("requestedProductionTrafficWeight"),
            "test": target.get("requestedTestTrafficWeight"),
        }
        if not seen or seen[-1] != brief:
            seen.append(brief)
    return seen


def stages(seen: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for brief in seen:
        if brief["stage"] and (not out or out[-1] != brief["stage"]):
            out.append(brief["stage"])
    return out


def running(sandbox: Sandbox) -> dict[str, int]:
    """Task definition revision (web:N) -> how many of its tasks run."""
    ecs = sandbox.client("ecs")
    arns = ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"]
    counts: dict[str, int] = {}
    for task in ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"] if arns else []:
        if task["lastStatus"] == "RUNNING":
            name = task["taskDefinitionArn"].rsplit("/", 1)[-1]
            counts[name] = counts.get(name, 0) + 1
    return counts


def deploy(sandbox: Sandbox, task_definition: str) -> str:
    sandbox.client("ecs").update_service(cluster="prod", service="web", taskDefinition=task_definition)
    return str(service(sandbox)["currentServiceDeployment"])


def test_blue_green_runs_every_stage_and_moves_production_at_once(sandbox: Sandbox, alb: AlbSetup) -> None:
    v2 = create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2})
    elbv2 = sandbox.client("elbv2")
    assert weights(elbv2, alb.production_rule_arn) == {alb.blue_arn: 100, alb.green_arn: 0}
    assert {state for state, _ in health(elbv2, alb.blue_arn).values()} == {"healthy"}
    arn = deploy(sandbox, v2)

    seen = play_recording(sandbox, arn, 150)  # into the bake time: both revisions run, production is green's
    assert stages(seen) == [
        "PRE_SCALE_UP",
        "SCALE_UP",
        "POST_SCALE_UP",
        "TEST_TRAFFIC_SHIFT",
        "POST_TEST_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
        "BAKE_TIME",
    ]
    assert [b["production"] for b in seen if b["stage"] == "BAKE_TIME"] == [100.0]
    assert running(sandbox) == {"web:1": 2, "web:2": 2}
    assert weights(elbv2, alb.production_rule_arn) == {alb.blue_arn: 0, alb.green_arn: 100}
    assert weights(elbv2, alb.test_rule_arn) == {alb.blue_arn: 0, alb.green_arn: 100}
    (source,) = record(sandbox, arn)["sourceServiceRevisions"]
    assert source["requestedProductionTrafficWeight"] == 0.0 and source["runningTaskCount"] == 2
    svc = service(sandbox)
    assert [(d["status"], d["taskDefinition"].rsplit("/", 1)[-1]) for d in svc["deployments"]] == [
        ("PRIMARY", "web:2"),
        ("ACTIVE", "web:1"),
    ]
    green_targets = health(elbv2, alb.green_arn)
    assert len(green_targets) == 2 and {s for s, _ in green_targets.values()} == {"healthy"}

    seen = play_recording(sandbox, arn, 240)
    assert "CLEAN_UP" in stages(seen) and seen[-1]["status"] == "SUCCESSFUL"
    assert running(sandbox) == {"web:2": 2}
    assert health(elbv2, alb.blue_arn) == {}  # blue's tasks deregistered
    svc = service(sandbox)
    assert [(d["status"], d["rolloutState"]) for d in svc["deployments"]] == [("PRIMARY", "COMPLETED")]
    sandbox.clock.time_scale = 60
    sandbox.client("ecs").get_waiter("services_stable").wait(
        cluster="prod", services=["web"], WaiterConfig={"Delay": 0.1}
    )


def test_the_next_blue_green_deployment_goes_back_to_the_first_target_group(sandbox: Sandbox, alb: AlbSetup) -> None:
    v2 = create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    play_recording(sandbox, deploy(sandbox, v2), 200)
    v3 = revision(sandbox, "v1")
    arn = deploy(sandbox, v3)
    seen = play_recording(sandbox, arn, 200)
    assert seen[-1]["status"] == "SUCCESSFUL"
    elbv2 = sandbox.client("elbv2")
    assert weights(elbv2, alb.production_rule_arn) == {alb.blue_arn: 100, alb.green_arn: 0}
    assert len(health(elbv2, alb.blue_arn)) == 2 and health(elbv2, alb.green_arn) == {}


@pytest.mark.parametrize(
    ("config", "shares"),
    [
        (
            {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20.0, "canaryBakeTimeInMinutes": 1}},
            [20, 100],
        ),
        (
            {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 1}},
            [25, 50, 75, 100],
        ),
    ],
    ids=["canary", "linear"],
)
def test_canary_and_linear_move_production_in_steps(
    sandbox: Sandbox, alb: AlbSetup, config: dict[str, Any], shares: list[int]
) -> None:
    v2 = create(sandbox, alb, config)
    elbv2 = sandbox.client("elbv2")
    arn = deploy(sandbox, v2)
    moved: list[int] = []
    for _ in range(120):
        sandbox.clock.advance(5)
        green = weights(elbv2, alb.production_rule_arn)[alb.green_arn]
        if green and (not moved or moved[-1] != green):
            moved.append(green)
            assert weights(elbv2, alb.production_rule_arn)[alb.blue_arn] == 100 - green
        if record(sandbox, arn)["status"] == "SUCCESSFUL":
            break
    assert moved == shares
    assert record(sandbox, arn)["status"] == "SUCCESSFUL" and running(sandbox) == {"web:2": 2}


def pause_hook(stage: str, **timeout: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {"targetType": "PAUSE", "lifecycleStages": [stage]}
    if timeout:
        hook["timeoutConfiguration"] = timeout
    return hook


def needs_pause_hooks() -> None:
    if not client_models("ContinueServiceDeploymentRequest", "hookId"):
        pytest.skip("this botocore's ECS model has no PAUSE hooks (ContinueServiceDeployment)")


def awaiting(sandbox: Sandbox, arn: str) -> dict[str, Any]:
    (hook,) = [h for h in record(sandbox, arn)["lifecycleHookDetails"] if h["status"] == "AWAITING_ACTION"]
    return dict(hook)


@pytest.mark.parametrize("action", ["CONTINUE", "ROLLBACK"])
def test_a_pause_hook_waits_for_continue_service_deployment(sandbox: Sandbox, alb: AlbSetup, action: str) -> None:
    needs_pause_hooks()
    config = {
        "strategy": "BLUE_GREEN",
        "bakeTimeInMinutes": 0,
        "lifecycleHooks": [pause_hook("POST_TEST_TRAFFIC_SHIFT")],
    }
    v2 = create(sandbox, alb, config)
    arn = deploy(sandbox, v2)
    play(sandbox, 300)  # however long: it waits
    now = record(sandbox, arn)
    assert now["status"] == "IN_PROGRESS" and now["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    hook = awaiting(sandbox, arn)
    assert hook["targetType"] == "PAUSE" and hook["timeoutAction"] == "ROLLBACK" and "expiresAt" in hook
    elbv2 = sandbox.client("elbv2")
    assert weights(elbv2, alb.test_rule_arn)[alb.green_arn] == 100
    assert weights(elbv2, alb.production_rule_arn)[alb.green_arn] == 0

    ecs = sandbox.client("ecs")
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action=action)
    play(sandbox, 200)
    final = record(sandbox, arn)
    if action == "CONTINUE":
        assert final["status"] == "SUCCESSFUL" and running(sandbox) == {"web:2": 2}
        assert weights(elbv2, alb.production_rule_arn)[alb.green_arn] == 100
    else:
        assert final["status"] == "ROLLBACK_SUCCESSFUL" and running(sandbox) == {"web:1": 2}
        assert final["rollback"]["serviceRevisionArn"] == final["sourceServiceRevisions"][0]["arn"]
        assert weights(elbv2, alb.production_rule_arn) == {alb.blue_arn: 100, alb.green_arn: 0}
        assert weights(elbv2, alb.test_rule_arn) == {alb.blue_arn: 100, alb.green_arn: 0}
        svc = service(sandbox)
        assert svc["deployments"][0]["taskDefinition"].endswith("web:1")
        assert svc["currentServiceDeployment"] == arn
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])


@pytest.mark.parametrize("action", ["ROLLBACK", "CONTINUE"])
def test_a_pause_hook_that_times_out_takes_its_timeout_action(sandbox: Sandbox, alb: AlbSetup, action: str) -> None:
    needs_pause_hooks()
    hook = pause_hook("PRODUCTION_TRAFFIC_SHIFT", timeoutInMinutes=2, action=action)
    v2 = create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [hook]})
    arn = deploy(sandbox, v2)
    play(sandbox, 400)
    final = record(sandbox, arn)
    (detail,) = final["lifecycleHookDetails"]
    assert detail["status"] == "TIMED_OUT"
    assert final["status"] == ("ROLLBACK_SUCCESSFUL" if action == "ROLLBACK" else "SUCCESSFUL")


def test_stop_service_deployment_rolls_a_blue_green_deployment_back(sandbox: Sandbox, alb: AlbSetup) -> None:
    v2 = create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 10})
    arn = deploy(sandbox, v2)
    play(sandbox, 120)
    assert record(sandbox, arn)["lifecycleStage"] == "BAKE_TIME"
    sandbox.client("ecs").stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    play(sandbox, 60)
    final = record(sandbox, arn)
    assert final["status"] == "ROLLBACK_SUCCESSFUL"
    assert final["rollback"]["reason"] == "StopServiceDeployment requested a rollback."
    assert running(sandbox) == {"web:1": 2}


def test_an_image_that_cannot_be_pulled_trips_the_breaker_and_blue_takes_over(sandbox: Sandbox, alb: AlbSetup) -> None:
    config = {
        "strategy": "BLUE_GREEN",
        "bakeTimeInMinutes": 0,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    }
    create(sandbox, alb, config)
    broken = revision(sandbox, "never-pushed")
    arn = deploy(sandbox, broken)
    play(sandbox, 300)
    final = record(sandbox, arn)
    assert final["status"] == "ROLLBACK_SUCCESSFUL" and final["lifecycleStage"] == "SCALE_UP"
    assert final["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert final["rollback"]["reason"] == "Circuit breaker failure threshold reached."
    assert running(sandbox) == {"web:1": 2}  # blue never stopped serving
    elbv2 = sandbox.client("elbv2")
    assert weights(elbv2, alb.production_rule_arn) == {alb.blue_arn: 100, alb.green_arn: 0}


def web_5xx_alarm(sandbox: Sandbox) -> dict[str, Any]:
    """The CloudWatch alarm ``web-5xx`` (OK until a test sets it), and the deployment's ``alarms`` that watch it."""
    sandbox.client("cloudwatch").put_metric_alarm(
        AlarmName="web-5xx",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    return {"alarmNames": ["web-5xx"], "enable": True, "rollback": True}


@pytest.mark.parametrize("strategy", ["ROLLING", "BLUE_GREEN"])
def test_an_alarm_in_alarm_fails_the_deployment_and_rolls_it_back(
    sandbox: Sandbox, alb: AlbSetup, strategy: str
) -> None:
    cloudwatch = sandbox.client("cloudwatch")
    config: dict[str, Any] = {"strategy": strategy, "alarms": web_5xx_alarm(sandbox)}
    if strategy == "BLUE_GREEN":
        config["bakeTimeInMinutes"] = 10
    v2 = create(sandbox, alb, config)
    arn = deploy(sandbox, v2)
    play(sandbox, 20)
    assert record(sandbox, arn)["alarms"] == {"status": "MONITORING", "alarmNames": ["web-5xx"]}
    cloudwatch.set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx from the new revision")
    play(sandbox, 200)
    final = record(sandbox, arn)
    assert final["alarms"]["status"] == "TRIGGERED" and final["alarms"]["triggeredAlarmNames"] == ["web-5xx"]
    assert final["status"] == "ROLLBACK_SUCCESSFUL"
    assert "web-5xx" in final["rollback"]["reason"]
    assert running(sandbox) == {"web:1": 2}


def lambda_hook(sandbox: Sandbox, name: str, code: str, stage: str) -> dict[str, Any]:
    iam, lam = sandbox.client("iam"), sandbox.client("lambda")
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("hook.py", code)
    function = lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="hook.handler",
        Code={"ZipFile": archive.getvalue()},
        Timeout=30,
    )["FunctionArn"]
    hook = {"hookTargetArn": function, "roleArn": ROLE.format(account=sandbox.account_id), "lifecycleStages": [stage]}
    if client_models("DeploymentLifecycleHook", "targetType"):  # older models know Lambda hooks only, untyped
        hook["targetType"] = "AWS_LAMBDA"
    return hook


def play_until(sandbox: Sandbox, arn: str, done: set[str], wall: float = 60.0) -> dict[str, Any]:
    """Move the clock on a little at a time, in wall time too (a Lambda hook runs in wall time), until the service
    deployment's status is one of ``done``."""
    deadline = time.monotonic() + wall
    while time.monotonic() < deadline:
        sandbox.clock.advance(5)
        now = record(sandbox, arn)
        if now["status"] in done:
            return now
        time.sleep(0.05)
    raise AssertionError(f"the service deployment is still {record(sandbox, arn)['status']}")


HOOK_THAT_LOOKS = """
import boto3

def handler(event, context):
    ecs = boto3.client("ecs")
    service = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    running = sum(d["runningCount"] for d in service["deployments"])
    return {"hookStatus": "SUCCEEDED" if running >= 4 and event["lifecycleStage"] == "POST_SCALE_UP" else "FAILED"}
"""

HOOK_THAT_FAILS = """
def handler(event, context):
    return {"hookStatus": "FAILED"}
"""


def test_a_lambda_hook_that_calls_the_sandbox_lets_the_deployment_go_on(sandbox: Sandbox, alb: AlbSetup) -> None:
    hook = lambda_hook(sandbox, "looks", HOOK_THAT_LOOKS, "POST_SCALE_UP")
    v2 = create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [hook]})
    arn = deploy(sandbox, v2)
    final = play_until(sandbox, arn, {"SUCCESSFUL", "ROLLBACK_SUCCESSFUL"})
    assert final["status"] == "SUCCESSFUL"
    if client_models("ServiceDeployment", "lifecycleHookDetails"):  # older models drop it from the answer
        (detail,) = final["lifecycleHookDetails"]
        assert detail["status"] == "SUCCEEDED" and detail["targetArn"] == hook["hookTargetArn"]


def test_a_lambda_hook_that_fails_rolls_the_deployment_back(sandbox: Sandbox, alb: AlbSetup) -> None:
    hook = lambda_hook(sandbox, "fails", HOOK_THAT_FAILS, "PRE_PRODUCTION_TRAFFIC_SHIFT")
    v2 = create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [hook]})
    arn = deploy(sandbox, v2)
    final = play_until(sandbox, arn, {"SUCCESSFUL", "ROLLBACK_SUCCESSFUL"})
    assert final["status"] == "ROLLBACK_SUCCESSFUL" and "failed" in final["rollback"]["reason"]
    if client_models("ServiceDeployment", "lifecycleHookDetails"):
        assert final["lifecycleHookDetails"][0]["status"] == "FAILED"
    assert running(sandbox) == {"web:1": 2}
    assert weights(sandbox.client("elbv2"), alb.production_rule_arn)[alb.green_arn] == 0


def test_strategies_without_what_they_need_are_refused(sandbox: Sandbox, alb: AlbSetup) -> None:
    ecs, v1 = sandbox.client("ecs"), revision(sandbox, "v1")
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"strategy": "BLUE_GREEN"}, True),  # no bake time
        ({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5}, False),  # no load balancer
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.0}}, True),
        ({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 5.05}}, True),
        ({"strategy": "ROLLING", "canaryConfiguration": {"canaryPercent": 5.0}}, True),
        ({"strategy": "SOMETIMES"}, True),
    ]
    for config, with_balancer in cases:
        options: dict[str, Any] = {"loadBalancers": [alb.load_balancer()]} if with_balancer else {}
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            ecs.create_service(
                cluster="prod",
                serviceName="web",
                taskDefinition=v1,
                desiredCount=1,
                deploymentConfiguration=config,
                **options,
            )


@pytest.mark.parametrize(
    "config",
    [
        {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1},
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 1}},
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 50.0, "stepBakeTimeInMinutes": 1}},
    ],
    ids=["blue-green", "canary", "linear"],
)
def test_the_services_stable_waiters_wait_for_the_whole_deployment(
    sandbox: Sandbox, alb: AlbSetup, config: dict[str, Any]
) -> None:
    """boto3's waiter and the aws CLI's: not stable while blue and green both run, stable once green runs alone."""
    v2 = create(sandbox, alb, config)
    arn = deploy(sandbox, v2)
    play(sandbox, 60)
    assert record(sandbox, arn)["status"] == "IN_PROGRESS" and len(service(sandbox)["deployments"]) == 2
    waiter = sandbox.client("ecs").get_waiter("services_stable")
    with pytest.raises(botocore.exceptions.WaiterError):
        waiter.wait(cluster="prod", services=["web"], WaiterConfig={"Delay": 0.01, "MaxAttempts": 2})
    play_recording(sandbox, arn, 400)
    assert record(sandbox, arn)["status"] == "SUCCESSFUL"
    waiter.wait(cluster="prod", services=["web"], WaiterConfig={"Delay": 0.01, "MaxAttempts": 2})
    command = ["aws", "ecs", "wait", "services-stable", "--cluster", "prod", "--services", "web"]
    done = subprocess.run(command, env={**os.environ, **sandbox.env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def rolling_with_early_success(sandbox: Sandbox, cleanup: str | None) -> str:
    """web on v1 (4 tasks, at least half of them healthy, never more than 4), early success at 50 % with
    ``cleanup`` (None: no early success); returns v2's ARN, to deploy. Raw JSON: older botocore lacks the setting."""
    config: dict[str, Any] = {"minimumHealthyPercent": 50, "maximumPercent": 100}
    if cleanup:
        config["earlySuccessCriteria"] = {"enable": True, "healthyPercent": 50, "sourceServiceRevisionCleanup": cleanup}
    body = {"cluster": "prod", "serviceName": "web", "taskDefinition": revision(sandbox, "v1"), "desiredCount": 4}
    sandbox.aws().call_json("ecs", "CreateService", {**body, "deploymentConfiguration": config})
    play(sandbox, 120)
    assert record(sandbox)["status"] == "SUCCESSFUL" and running(sandbox) == {"web:1": 4}
    return revision(sandbox, "v2")


def until_over(sandbox: Sandbox, arn: str, seconds: float = 600) -> dict[str, int]:
    """Move the clock a second at a time until the deployment is over; the tasks running at that moment."""
    for _ in range(int(seconds)):
        sandbox.clock.advance(1)
        if record(sandbox, arn)["status"] != "IN_PROGRESS":
            return running(sandbox)
    raise AssertionError(f"{arn} still in progress after {seconds} s")


@pytest.mark.parametrize(
    ("cleanup", "at_success"),
    [
        (None, {"web:2": 4}),  # the default: every task replaced, the old ones gone, then stable for a while
        ("DEFERRED", {"web:1": 2, "web:2": 2}),  # half of v2 healthy: done; v1's tasks go after
        ("BLOCKING", {"web:2": 2}),  # half of v2 healthy, v1's tasks stopped: done; v2's other two start after
    ],
    ids=["default", "deferred", "blocking"],
)
def test_early_success_completes_a_rolling_deployment_once_its_healthy_percent_runs(
    sandbox: Sandbox, cleanup: str | None, at_success: dict[str, int]
) -> None:
    arn = deploy(sandbox, rolling_with_early_success(sandbox, cleanup))
    assert until_over(sandbox, arn) == at_success
    assert record(sandbox, arn)["status"] == "SUCCESSFUL"
    play(sandbox, 120)  # the service goes on to its desired count on v2 alone
    assert running(sandbox) == {"web:2": 4} and len(service(sandbox)["deployments"]) == 1


def test_early_success_is_checked_as_ecs_checks_it(sandbox: Sandbox, alb: AlbSetup) -> None:
    aws, v1 = sandbox.aws(), revision(sandbox, "v1")
    body = {"cluster": "prod", "serviceName": "web", "taskDefinition": v1, "desiredCount": 1}
    early = {"enable": True, "healthyPercent": 50, "sourceServiceRevisionCleanup": "DEFERRED"}
    cases = [
        ({"earlySuccessCriteria": early}, "minimumHealthyPercent (100)"),  # below the default minimum
        ({"minimumHealthyPercent": 50, "earlySuccessCriteria": {**early, "healthyPercent": 101}}, "healthyPercent"),
        (
            {"minimumHealthyPercent": 50, "earlySuccessCriteria": {**early, "sourceServiceRevisionCleanup": "X"}},
            "BLOCKING or",
        ),
        ({"minimumHealthyPercent": 50, "earlySuccessCriteria": {"healthyPercent": 50}}, "needs enable"),
        (
            {
                "strategy": "BLUE_GREEN",
                "bakeTimeInMinutes": 1,
                "minimumHealthyPercent": 50,
                "earlySuccessCriteria": early,
            },
            "ROLLING strategy only",
        ),
    ]
    for config, words in cases:
        extra = {"loadBalancers": [alb.load_balancer()]} if "strategy" in config else {}
        with pytest.raises(AwsError) as refused:
            aws.call_json("ecs", "CreateService", {**body, **extra, "deploymentConfiguration": config})
        assert refused.value.code == "InvalidParameterException" and words in str(refused.value), config
    disabled = {"minimumHealthyPercent": 50, "earlySuccessCriteria": {"enable": False}}
    aws.call_json("ecs", "CreateService", {**body, "deploymentConfiguration": disabled})
