"""``opskit continue``, ``opskit abort`` and ``opskit rollback`` on a deployment in progress, over HTTP against a
sandbox whose clock runs 60x faster (tasks simulated): a BLUE_GREEN service that pauses after its test traffic shift."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from opskit.cli import main
from opskit.sandbox import Sandbox
from opskit.sandbox.alb import make_alb
from tests.sandbox.test_services import manifest, wait_for

PAUSE = {
    "targetType": "PAUSE",
    "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
    "timeoutConfiguration": {"timeoutInMinutes": 600, "action": "ROLLBACK"},
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False, throttle=False) as sb:
        ecr = sb.client("ecr")
        ecr.create_repository(repositoryName="web")
        for tag in ("v1", "v2"):
            ecr.put_image(repositoryName="web", imageManifest=manifest(tag), imageTag=tag)
        sb.client("ecs").create_cluster(clusterName="prod")
        alb = make_alb(sb)
        body = {
            "cluster": "prod",
            "serviceName": "web",
            "taskDefinition": revision(sb, "v1"),
            "desiredCount": 2,
            "loadBalancers": [alb.load_balancer()],
            "deploymentConfiguration": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2, "lifecycleHooks": [PAUSE]},
        }
        sb.aws().call_json("ecs", "CreateService", body)  # raw: older botocore has no PAUSE hooks
        wait_for(lambda: current(sb)["status"] == "SUCCESSFUL")
        yield sb


def revision(sandbox: Sandbox, tag: str) -> str:
    container = {"name": "web", "image": f"{sandbox.registry_host}/web:{tag}", "memory": 64}
    container["portMappings"] = [{"containerPort": 8080}]
    answer = sandbox.client("ecs").register_task_definition(family="web", containerDefinitions=[container])
    return str(answer["taskDefinition"]["taskDefinitionArn"])


def current(sandbox: Sandbox) -> dict[str, Any]:
    (service,) = sandbox.client("ecs").describe_services(cluster="prod", services=["web"])["services"]
    arns = [service["currentServiceDeployment"]]
    (record,) = sandbox.aws().call_json("ecs", "DescribeServiceDeployments", {"serviceDeploymentArns": arns})[
        "serviceDeployments"
    ]
    return dict(record)


def paused(sandbox: Sandbox) -> dict[str, Any]:
    """Deploy v2 and wait until it waits at its PAUSE hook."""
    sandbox.client("ecs").update_service(cluster="prod", service="web", taskDefinition=revision(sandbox, "v2"))
    return wait_for(
        lambda: (
            (r := current(sandbox))["status"] == "IN_PROGRESS"
            and any(h["status"] == "AWAITING_ACTION" for h in r.get("lifecycleHookDetails") or [])
            and r
        )
    )


def opskit(sandbox: Sandbox, *args: str) -> Result:
    where = ["--cluster", "prod", "--service", "web"]
    return CliRunner().invoke(main, [*args, *where, "--poll-interval", "0.1", "--format", "json"], env=sandbox.env)


def running(sandbox: Sandbox) -> str:
    (service,) = sandbox.client("ecs").describe_services(cluster="prod", services=["web"])["services"]
    return str(service["taskDefinition"].rsplit("/", 1)[1])


def test_continue_lets_the_paused_deployment_go_on_to_its_verdict(sandbox: Sandbox) -> None:
    record = paused(sandbox)
    result = opskit(sandbox, "continue")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["outcome"] == "COMPLETED" and answer["service_deployment_arn"] == record["serviceDeploymentArn"]
    (hook,) = current(sandbox)["lifecycleHookDetails"]
    assert hook["status"] == "SUCCEEDED" and running(sandbox) == "web:2"
    assert "stage BAKE_TIME" in result.stderr  # followed as it moved


def test_continue_with_rollback_rolls_it_back_at_the_hook(sandbox: Sandbox) -> None:
    paused(sandbox)
    result = opskit(sandbox, "continue", "--rollback")
    assert result.exit_code == 0, result.output  # what was asked for
    assert json.loads(result.stdout)["outcome"] == "ROLLED_BACK" and running(sandbox) == "web:1"


def test_abort_stops_it_where_it_stands(sandbox: Sandbox) -> None:
    paused(sandbox)
    result = opskit(sandbox, "abort")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcome"] == "STOPPED" and current(sandbox)["status"] == "STOPPED"


def test_rollback_of_a_deployment_in_progress_is_ecs_s_rollback(sandbox: Sandbox) -> None:
    paused(sandbox)
    result = opskit(sandbox, "rollback")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["outcome"] == "ROLLED_BACK" and "StopServiceDeployment" in answer["reason"]
    assert running(sandbox) == "web:1"


def test_nothing_to_continue_or_stop_is_refused_in_one_line(sandbox: Sandbox) -> None:
    for command in ("continue", "abort"):
        result = opskit(sandbox, command)
        assert result.exit_code == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("opskit: error: web's last deployment") and "not in progress" in line
    paused(sandbox)
    result = opskit(sandbox, "continue", "--hook", "nope")  # in progress, but not at that hook
    assert result.exit_code == 2 and "no PAUSE hook nope awaits action" in result.stderr


def test_continue_can_stop_following_at_a_stage_or_wait_for_a_steady_service(sandbox: Sandbox) -> None:
    paused(sandbox)
    result = opskit(sandbox, "continue", "--wait-until", "stage:BAKE_TIME")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["outcome"] == "REACHED" and answer["reason"].startswith("the deployment reached BAKE_TIME")
    assert current(sandbox)["status"] == "IN_PROGRESS"  # it goes on in ECS
    wait_for(lambda: current(sandbox)["status"] == "SUCCESSFUL")

    paused(sandbox)
    result = opskit(sandbox, "continue", "--wait-until", "stable")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reason"].endswith("; the service is steady")
    assert "web is steady: 2/2 tasks running" in result.stderr

    refused = opskit(sandbox, "continue", "--wait-until", "soon")
    assert refused.exit_code == 2 and refused.stderr.startswith("opskit: error: --wait-until 'soon' is not one of")
