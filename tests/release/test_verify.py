"""``opskit verify`` and :func:`opskit.release.verify.verify` over HTTP against a sandbox (tasks simulated): a clean
Fargate revision behind an ALB finds nothing, in 8 calls, and each way of breaking it is one finding that says what
to do."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from opskit.aws import Aws
from opskit.cli import main
from opskit.release.verify import Finding, verify
from opskit.sandbox import Sandbox
from opskit.sandbox.alb import CONTAINER_PORT, AlbSetup, make_alb
from tests.conftest import canary
from tests.sandbox.test_services import manifest, wait_for
from tests.test_readme import ROOT

ECS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class World:
    sandbox: Sandbox
    alb: AlbSetup
    execution_role: str
    task_role: str
    parameter: str  # an SSM parameter's ARN
    secret: str  # a Secrets Manager secret's ARN
    body: dict[str, Any]  # a clean Fargate revision
    service: dict[str, Any]  # DescribeServices' entry: Fargate, behind the ALB's blue target group

    def verify(self, body: dict[str, Any] | None = None, **options: Any) -> list[Finding]:
        options.setdefault("service", self.service)
        return verify(self.sandbox.aws(), self.body if body is None else body, cluster="prod", **options)

    def changed(self, **fields: Any) -> dict[str, Any]:
        """The clean body with these task-level fields (None: removed)."""
        body = copy.deepcopy(self.body)
        for name, value in fields.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        return body

    def container(self, **fields: Any) -> dict[str, Any]:
        """The clean body with these fields of its container changed."""
        body = copy.deepcopy(self.body)
        body["containerDefinitions"][0].update(fields)
        return body

    def image(self, tag: str) -> str:
        return f"{self.sandbox.registry_host}/web:{tag}"


@pytest.fixture
def world() -> Iterator[World]:
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False, throttle=False) as sb:
        yield build_world(sb)


def build_world(sb: Sandbox) -> World:
    iam = sb.client("iam")
    execution = iam.create_role(RoleName="ecsTaskExecutionRole", AssumeRolePolicyDocument=json.dumps(ECS_TRUST))
    task = iam.create_role(RoleName="web-task", Path="/app/", AssumeRolePolicyDocument=json.dumps(ECS_TRUST))
    parameter = sb.client("ssm").put_parameter(Name="/web/database-url", Value=canary("db-url"), Type="SecureString")
    assert parameter["Version"] == 1
    parameter_arn = f"arn:aws:ssm:{sb.region_name}:{sb.account_id}:parameter/web/database-url"
    secret = sb.client("secretsmanager").create_secret(
        Name="db-password", SecretString=json.dumps({"password": canary("db-password")})
    )["ARN"]
    sb.client("logs").create_log_group(logGroupName="/ecs/web")
    ecr = sb.client("ecr")
    ecr.create_repository(repositoryName="web")
    ecr.put_image(repositoryName="web", imageManifest=manifest("v1"), imageTag="v1")
    alb = make_alb(sb)
    body: dict[str, Any] = {
        "family": "web",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": execution["Role"]["Arn"],
        "taskRoleArn": task["Role"]["Arn"],
        "containerDefinitions": [
            {
                "name": "web",
                "image": f"{sb.registry_host}/web:v1",
                "essential": True,
                "portMappings": [{"containerPort": CONTAINER_PORT, "protocol": "tcp"}],
                "secrets": [
                    {"name": "DATABASE_URL", "valueFrom": parameter_arn},
                    {"name": "DB_PASSWORD", "valueFrom": f"{secret}:password::"},  # a JSON key of the secret
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/ecs/web",
                        "awslogs-region": sb.region_name,
                        "awslogs-stream-prefix": "web",
                    },
                },
            }
        ],
    }
    ecs = sb.client("ecs")
    ecs.create_cluster(clusterName="prod")
    arn = ecs.register_task_definition(**body)["taskDefinition"]["taskDefinitionArn"]
    sb.aws().call_json(
        "ecs",
        "CreateService",
        {
            "cluster": "prod",
            "serviceName": "web",
            "taskDefinition": arn,
            "desiredCount": 1,
            "launchType": "FARGATE",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": list(alb.subnet_ids)}},
            "loadBalancers": [
                {"targetGroupArn": alb.blue_arn, "containerName": "web", "containerPort": CONTAINER_PORT}
            ],
        },
    )
    (service,) = sb.aws().call_json("ecs", "DescribeServices", {"cluster": "prod", "services": ["web"]})["services"]
    return World(sb, alb, execution["Role"]["Arn"], task["Role"]["Arn"], parameter_arn, secret, body, service)


def only(findings: list[Finding], check: str, severity: str = "error") -> Finding:
    """The one finding there is, of ``check`` and ``severity``."""
    assert [(f.check, f.severity) for f in findings] == [(check, severity)], findings
    assert "\n" not in findings[0].message and ": " in findings[0].message  # one line: what is wrong: what to do
    return findings[0]


# -- a clean revision ------------------------------------------------------------------------------------------------
def test_a_clean_revision_has_no_findings_in_eight_calls(world: World) -> None:
    world.sandbox.reset_calls()
    assert world.verify() == []
    assert world.sandbox.calls == {
        "GetAuthorizationToken": 1,
        "DescribeImages": 1,
        "GetRole": 2,
        "GetParameters": 1,
        "DescribeSecret": 1,
        "DescribeLogGroups": 1,
        "DescribeTargetGroups": 1,
    }


def test_each_resource_is_looked_up_once(world: World) -> None:
    """Two containers with the same image, secret and log group, and one role as both roles: one call each."""
    body = world.changed(taskRoleArn=world.execution_role)
    body["containerDefinitions"].append({**copy.deepcopy(body["containerDefinitions"][0]), "name": "sidecar"})
    world.sandbox.reset_calls()
    assert world.verify(body, service=None) == []
    assert world.sandbox.calls == {
        "GetAuthorizationToken": 1,
        "DescribeImages": 1,
        "GetRole": 1,
        "GetParameters": 1,
        "DescribeSecret": 1,
        "DescribeLogGroups": 1,
    }


# -- VER001 images ---------------------------------------------------------------------------------------------------
def test_an_image_that_is_not_in_ecr(world: World) -> None:
    finding = only(world.verify(world.container(image=world.image("v9"))), "VER001")
    assert finding.resource == f"image {world.image('v9')}"
    assert finding.message == (
        "container web's image is not in ECR (no tag v9 in repository web): push it, or point the container at an "
        "image that is there"
    )


def test_an_image_index_without_the_revisions_platform(world: World) -> None:
    ecr = world.sandbox.client("ecr")
    arm = ecr.put_image(repositoryName="web", imageManifest=manifest("arm"), imageTag="arm-only")["image"]
    child = {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 100}
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            {**child, "digest": arm["imageId"]["imageDigest"], "platform": {"os": "linux", "architecture": "arm64"}},
            # buildx's attestation manifest: no platform of its own
            {
                **child,
                "digest": arm["imageId"]["imageDigest"],
                "platform": {"os": "unknown", "architecture": "unknown"},
            },
        ],
    }
    ecr.put_image(repositoryName="web", imageManifest=json.dumps(index), imageTag="multi", imageManifestMediaType=INDEX)
    body = world.container(image=world.image("multi"))
    finding = only(world.verify(body), "VER001")
    assert finding.message == (
        "container web's image is built for linux/arm64, not linux/amd64, which the revision runs on: push it for "
        "linux/amd64, or set runtimePlatform to one it has"
    )
    arm64 = {**body, "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}}
    world.sandbox.reset_calls()
    assert world.verify(arm64) == []
    assert world.sandbox.calls["BatchGetImage"] == 1  # only an index is read
    assert world.verify(body, platform="linux/arm64") == []


def test_images_of_other_registries_are_not_looked_at(world: World) -> None:
    body = world.container(image="public.ecr.aws/nginx/nginx:1.27")
    body["containerDefinitions"].append({"name": "agent", "image": "datadog/agent:7"})
    world.sandbox.reset_calls()
    assert world.verify(body) == []
    assert "DescribeImages" not in world.sandbox.calls


# -- VER002 roles ----------------------------------------------------------------------------------------------------
def test_a_role_that_does_not_exist(world: World) -> None:
    missing = f"arn:aws:iam::{world.sandbox.account_id}:role/web-task-gone"
    finding = only(world.verify(world.changed(taskRoleArn=missing)), "VER002")
    assert finding.resource == f"role {missing}"
    assert finding.message == "the role does not exist: create it (trusting ecs-tasks.amazonaws.com) or fix taskRoleArn"


def test_a_role_arn_whose_path_is_wrong(world: World) -> None:
    wrong = f"arn:aws:iam::{world.sandbox.account_id}:role/web-task"  # the role is /app/web-task
    finding = only(world.verify(world.changed(taskRoleArn=wrong)), "VER002")
    assert finding.message == f"no role has this ARN (IAM's role web-task is {world.task_role}): fix taskRoleArn"


def test_a_role_that_ecs_tasks_cannot_assume(world: World) -> None:
    role = world.sandbox.client("iam").create_role(
        RoleName="lambda-only", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    finding = only(world.verify(world.changed(executionRoleArn=role["Role"]["Arn"])), "VER002")
    assert finding.message == (
        "the role's trust policy does not let ecs-tasks.amazonaws.com assume it, so tasks cannot use it as "
        "executionRoleArn: allow sts:AssumeRole to the service principal ecs-tasks.amazonaws.com"
    )


def test_secrets_awslogs_and_ecr_images_on_fargate_need_an_execution_role(world: World) -> None:
    finding = only(world.verify(world.changed(executionRoleArn=None)), "VER002")
    assert finding.resource == "task definition web"
    assert finding.message.startswith(
        "the revision has no executionRoleArn, which ECS needs (its containers read secrets; Fargate writes awslogs "
        "with it; Fargate pulls ECR images with it): set executionRoleArn"
    )


# -- VER003 secrets --------------------------------------------------------------------------------------------------
def test_an_ssm_parameter_that_does_not_exist(world: World) -> None:
    secrets = [{"name": "TOKEN", "valueFrom": "/web/token"}, {"name": "DATABASE_URL", "valueFrom": "/web/database-url"}]
    finding = only(world.verify(world.container(secrets=secrets)), "VER003")
    assert finding.line() == (
        "VER003  parameter /web/token  the SSM parameter does not exist: create it or fix valueFrom of web's TOKEN"
    )


def test_a_secret_that_does_not_exist(world: World) -> None:
    gone = f"arn:aws:secretsmanager:{world.sandbox.region_name}:{world.sandbox.account_id}:secret:db-password-AbCdEf"
    finding = only(world.verify(world.container(secrets=[{"name": "DB_PASSWORD", "valueFrom": gone}])), "VER003")
    assert finding.line() == (
        f"VER003  secret {gone}  the secret does not exist: create it or fix valueFrom of web's DB_PASSWORD"
    )


def test_log_options_and_registry_credentials_are_secrets_too(world: World) -> None:
    logs = {**awslogs("/ecs/web"), "secretOptions": [{"name": "apikey", "valueFrom": "/web/log-api-key"}]}
    credentials = f"{world.secret[:-7]}-registry-AbCdEf"
    body = world.container(logConfiguration=logs, repositoryCredentials={"credentialsParameter": credentials})
    body["containerDefinitions"][0]["secrets"].append({"name": "BUCKET", "valueFrom": "arn:aws:s3:::web-config/x"})
    findings = world.verify(body)
    assert [(f.check, f.resource, f.message.split(":")[0]) for f in findings] == [
        (
            "VER003",
            "secret arn:aws:s3:::web-config/x",
            "web's BUCKET names an ARN of s3, and ECS reads secrets from SSM Parameter Store and Secrets Manager only",
        ),
        ("VER003", "parameter /web/log-api-key", "the SSM parameter does not exist"),
        ("VER003", f"secret {credentials}", "the secret does not exist"),
    ]
    assert findings[1].message.endswith("of web's log option apikey")
    assert findings[2].message.endswith("of web's registry credentials")


def test_the_json_key_suffix_is_stripped_and_its_version_checked(world: World) -> None:
    versions = world.sandbox.client("secretsmanager").describe_secret(SecretId=world.secret)["VersionIdsToStages"]
    (version,) = versions

    def findings(value_from: str) -> list[Finding]:
        return world.verify(world.container(secrets=[{"name": "DB_PASSWORD", "valueFrom": value_from}]))

    assert findings(f"{world.secret}:password:AWSCURRENT:") == []
    assert findings(f"{world.secret}:password::{version}") == []
    assert findings(f"{world.secret}::AWSCURRENT:{version}") == []
    staged = only(findings(f"{world.secret}:password:AWSPENDING:"), "VER003")
    assert staged.resource == f"secret {world.secret}"
    assert staged.message.startswith("the secret has no version labelled AWSPENDING: label one")
    other = "0d4cb2b4-4cdb-4b0c-9a7d-1a2b3c4d5e6f"
    assert only(findings(f"{world.secret}:password::{other}"), "VER003").message.startswith(
        f"the secret has no version {other}: fix the version id in valueFrom"
    )


# -- VER004 log groups -----------------------------------------------------------------------------------------------
def awslogs(group: str, **options: str) -> dict[str, Any]:
    return {"logDriver": "awslogs", "options": {"awslogs-group": group, "awslogs-stream-prefix": "web", **options}}


def test_a_log_group_that_does_not_exist(world: World) -> None:
    finding = only(world.verify(world.container(logConfiguration=awslogs("/ecs/web-gone"))), "VER004")
    assert finding.line() == (
        "VER004  log group /ecs/web-gone  the log group does not exist, so container web cannot start: create it, or "
        'set awslogs-create-group to "true" (the execution role then needs logs:CreateLogGroup)'
    )
    assert (
        world.verify(world.container(logConfiguration=awslogs("/ecs/web-gone", **{"awslogs-create-group": "true"})))
        == []
    )


def test_a_log_group_is_looked_for_in_its_own_region(world: World) -> None:
    elsewhere = world.container(logConfiguration=awslogs("/ecs/web", **{"awslogs-region": "eu-west-1"}))
    assert only(world.verify(elsewhere), "VER004").message.startswith("the log group does not exist in eu-west-1,")
    replace(world.sandbox.aws(), region="eu-west-1").client("logs").create_log_group(logGroupName="/ecs/web")
    assert world.verify(elsewhere) == []


# -- VER005 load balancers -------------------------------------------------------------------------------------------
def with_load_balancer(world: World, **entry: Any) -> dict[str, Any]:
    lb = {"targetGroupArn": world.alb.blue_arn, "containerName": "web", "containerPort": CONTAINER_PORT, **entry}
    return {**world.service, "loadBalancers": [lb]}


def test_a_load_balancer_container_the_revision_lacks(world: World) -> None:
    finding = only(world.verify(service=with_load_balancer(world, containerName="api")), "VER005")
    assert finding.resource == "container api"
    assert "(its containers: web)" in finding.message


def test_a_load_balancer_port_the_container_does_not_map(world: World) -> None:
    finding = only(world.verify(service=with_load_balancer(world, containerPort=9090)), "VER005")
    assert finding.line() == (
        "VER005  container web:9090  service prod/web sends its load balancer's traffic to port 9090 of container "
        "web, which maps 8080: add a portMappings entry with containerPort 9090, or fix the service's loadBalancers"
    )


def test_a_target_group_of_type_ip_needs_awsvpc(world: World) -> None:
    bridge = world.changed(networkMode="bridge", requiresCompatibilities=["EC2"])
    finding = only(world.verify(bridge, service={**with_load_balancer(world), "launchType": "EC2"}), "VER005")
    assert finding.resource == f"target group {world.alb.blue_arn.rsplit(':', 1)[-1]}"
    assert finding.message.startswith("the target group's target type is ip, which needs the awsvpc network mode")


def test_a_target_group_of_type_instance_refuses_awsvpc_tasks_and_one_alone_refuses_all(world: World) -> None:
    group = world.sandbox.client("elbv2").create_target_group(
        Name="web-instances", Protocol="HTTP", Port=CONTAINER_PORT, VpcId=world.alb.vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    findings = world.verify(service=with_load_balancer(world, targetGroupArn=group))
    assert [f.message.split(":")[0] for f in findings] == [
        "the target group's target type is instance, which tasks of the awsvpc network mode cannot join",
        "the target group is not attached to a load balancer, and ECS refuses it",
    ]


def test_a_target_group_that_does_not_exist(world: World) -> None:
    gone = world.alb.green_arn.rsplit("/", 1)[0] + "/0123456789abcdef"
    service = with_load_balancer(world, advancedConfiguration={"alternateTargetGroupArn": gone})
    world.sandbox.reset_calls()
    finding = only(world.verify(service=service), "VER005")
    assert finding.message == "the target group does not exist: create it, or fix the service's loadBalancers"
    assert world.sandbox.calls["DescribeTargetGroups"] == 3  # both, then each alone to tell which is missing


def test_a_udp_target_group_for_a_tcp_port(world: World) -> None:
    elbv2 = world.sandbox.client("elbv2")
    balancer = elbv2.create_load_balancer(Name="web-nlb", Subnets=list(world.alb.subnet_ids), Type="network")
    group = elbv2.create_target_group(
        Name="web-udp", Protocol="UDP", Port=CONTAINER_PORT, VpcId=world.alb.vpc_id, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=balancer["LoadBalancers"][0]["LoadBalancerArn"],
        Protocol="UDP",
        Port=53,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
    )
    finding = only(world.verify(service=with_load_balancer(world, targetGroupArn=group)), "VER005")
    assert finding.message == (
        "the target group speaks UDP, and container web maps port 8080 as tcp: map it as udp, or use a target group "
        "for tcp"
    )


def test_a_health_check_port_no_container_maps_is_a_warning(world: World) -> None:
    world.sandbox.client("elbv2").modify_target_group(TargetGroupArn=world.alb.blue_arn, HealthCheckPort="9999")
    finding = only(world.verify(), "VER005", "warning")
    assert finding.message.startswith("the target group checks health on port 9999, which no container")


# -- VER006 Fargate --------------------------------------------------------------------------------------------------
def fargate(cpu: int, memory: int, **fields: Any) -> list[Finding]:
    """verify() of a Fargate revision that names nothing to look up: it makes no call."""
    body = {
        "family": "size",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(cpu),
        "memory": str(memory),
        "containerDefinitions": [{"name": "app", "image": "busybox:1.36"}],
        **fields,
    }
    return verify(Aws(region="us-east-1", endpoint_url="http://127.0.0.1:9"), body)


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [(256, 512), (256, 2048), (512, 4096), (1024, 8192), (2048, 9216), (4096, 30720), (8192, 61440), (16384, 122880)],
)
def test_the_fargate_sizes_aws_documents(cpu: int, memory: int) -> None:
    assert fargate(cpu, memory) == []


@pytest.mark.parametrize(
    ("cpu", "memory", "says"),
    [
        (256, 3072, "with cpu 256, set memory to 512, 1024 or 2048 (MiB)"),
        (512, 512, "with cpu 512, set memory to 1024 to 4096 in steps of 1024 (MiB)"),
        (1024, 9216, "with cpu 1024, set memory to 2048 to 8192 in steps of 1024 (MiB)"),
        (8192, 18432, "with cpu 8192, set memory to 16384 to 61440 in steps of 4096 (MiB)"),
        (16384, 36864, "with cpu 16384, set memory to 32768 to 122880 in steps of 8192 (MiB)"),
        (768, 2048, "set cpu to one of 256, 512, 1024, 2048, 4096, 8192, 16384"),
    ],
)
def test_sizes_fargate_does_not_have(cpu: int, memory: int, says: str) -> None:
    assert says in only(fargate(cpu, memory), "VER006").message


def test_fargate_sizes_in_vcpu_and_gb_and_windows(world: World) -> None:
    assert world.verify(world.changed(cpu="1 vCPU", memory="2 GB")) == []
    assert world.verify(world.changed(cpu=".25 vcpu", memory="0.5GB")) == []
    windows = world.changed(runtimePlatform={"operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"})
    assert only(world.verify(windows), "VER006").message.startswith("Fargate runs Windows containers with 1024")


def test_a_fargate_revision_with_a_size_fargate_lacks_or_another_network_mode(world: World) -> None:
    finding = only(world.verify(world.changed(memory="4096")), "VER006")
    assert finding.line() == (
        "VER006  task size cpu 256 memory 4096  Fargate has no task of 256 CPU units with 4096 MiB: with cpu 256, "
        "set memory to 512, 1024 or 2048 (MiB)"
    )
    missing = only(world.verify(world.changed(cpu=None), service=None), "VER006")
    assert missing.message.startswith("Fargate needs task-level cpu and memory, and the revision lacks cpu:")
    bridge = world.changed(networkMode="bridge")
    findings = world.verify(bridge, service=None)
    assert [(f.check, f.resource) for f in findings] == [("VER006", "network mode bridge")]


def test_a_fargate_service_asks_for_fargate_without_requires_compatibilities(world: World) -> None:
    body = world.changed(requiresCompatibilities=None, memory="4096")
    assert world.verify(body, service=None) == []  # EC2: any size
    assert only(world.verify(body), "VER006").resource == "task size cpu 256 memory 4096"  # its service: Fargate
    spot = {**world.service, "launchType": None, "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT"}]}
    assert only(world.verify(body, service=spot), "VER006")


# -- missing permissions ---------------------------------------------------------------------------------------------
def test_a_permission_the_caller_lacks_is_one_warning_naming_it(world: World) -> None:
    """moto's IAM access control (moto.core.enable_iam_authentication) makes the sandbox refuse a user whose policy
    denies two of the reads: each is one warning naming the permission, and the other checks still run."""
    from moto.core import enable_iam_authentication

    sb = world.sandbox
    iam = sb.client("iam")
    iam.create_user(UserName="ci")
    denied = ["iam:GetRole", "elasticloadbalancing:DescribeTargetGroups"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": denied, "Resource": "*"},
        ],
    }
    iam.put_user_policy(UserName="ci", PolicyName="verify", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="ci")["AccessKey"]
    ci = Aws(
        region=sb.region_name,
        endpoint_url=sb.endpoint_url,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
    )
    body = world.changed(taskRoleArn=f"arn:aws:iam::{sb.account_id}:role/gone")
    body["containerDefinitions"][0]["logConfiguration"] = awslogs("/ecs/web-gone")
    with enable_iam_authentication():
        findings = verify(ci, body, cluster="prod", service=world.service)
    assert [(f.check, f.severity, f.resource) for f in findings] == [
        ("VER004", "error", "log group /ecs/web-gone"),
        ("VER002", "warning", "permission iam:GetRole"),
        ("VER005", "warning", "permission elasticloadbalancing:DescribeTargetGroups"),
    ]
    assert findings[1].message == (
        "AWS denied it, so the roles went unchecked: grant iam:GetRole to whoever runs the verify"
    )


# -- opskit verify ---------------------------------------------------------------------------------------------------
def opskit(world: World, *args: str) -> Result:
    return CliRunner().invoke(main, ["verify", "--cluster", "prod", "--service", "web", *args], env=world.sandbox.env)


def test_the_command_verifies_the_live_revision(world: World) -> None:
    result = opskit(world)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == "opskit: verified web:1 for prod/web: nothing found wrong\n"


def test_the_command_verifies_a_file_and_exits_1_on_an_error(world: World, tmp_path: Path) -> None:
    body = world.container(image=world.image("{{ tag }}"))
    body["containerDefinitions"][0]["secrets"] = [{"name": "TOKEN", "valueFrom": "/web/{{ env }}/token"}]
    path = tmp_path / "task-definition.json"
    path.write_text(json.dumps(body))
    result = opskit(world, "--task-definition", str(path), "--var", "tag=v7", "--var", "env=prod")
    assert result.exit_code == 1, result.output
    width = len(f"image {world.image('v7')}")  # the longer resource: the column is as wide
    assert result.stdout.splitlines() == [
        f"VER001  {'image ' + world.image('v7'):<{width}}  container web's image is not in ECR (no tag v7 in "
        "repository web): push it, or point the container at an image that is there",
        f"VER003  {'parameter /web/prod/token':<{width}}  the SSM parameter does not exist: create it or fix "
        "valueFrom of web's TOKEN",
    ]
    assert result.stderr.endswith(f"verified {path} for prod/web: 2 errors, 0 warnings\n")
    as_json = opskit(world, "--task-definition", str(path), "--var", "tag=v7", "--var", "env=prod", "--format", "json")
    assert as_json.exit_code == 1
    assert [f["check"] for f in json.loads(as_json.stdout)] == ["VER001", "VER003"]
    assert json.loads(as_json.stdout)[1] == {
        "check": "VER003",
        "resource": "parameter /web/prod/token",
        "message": "the SSM parameter does not exist: create it or fix valueFrom of web's TOKEN",
        "severity": "error",
    }


def test_warnings_alone_exit_0(world: World) -> None:
    world.sandbox.client("elbv2").modify_target_group(TargetGroupArn=world.alb.blue_arn, HealthCheckPort="9999")
    result = opskit(world)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("VER005  target group ")
    assert result.stderr.endswith(": 0 errors, 1 warning\n")


def test_the_command_refuses_bad_input_in_one_line(world: World, tmp_path: Path) -> None:
    assert opskit(world, "--var", "no-equals").exit_code == 2
    missing = opskit(world, "--task-definition", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2
    assert missing.stderr == (
        f"opskit: error: task definition file {tmp_path / 'nope.json'} does not exist: check --task-definition\n"
    )
    other = CliRunner().invoke(main, ["verify", "--cluster", "prod", "--service", "api"], env=world.sandbox.env)
    assert other.exit_code == 2
    assert other.stderr.startswith("opskit: error: service 'api' not found in cluster 'prod'")


def test_the_readme_recipe(tmp_path: Path) -> None:
    """The README's verify recipe runs as written against the demo sandbox, which never made web's execution role
    or its parameter."""
    section = (ROOT / "README.md").read_text().split("\n### Verifying before a release\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match
    recipe = match.group(1)
    assert "opskit verify" in recipe
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OPSKIT_STATE_DIR": str(tmp_path / "state"),
        "OPSKIT_CACHE_DIR": str(tmp_path / "cache"),
    }
    answer = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    lines = [line.split()[:2] for line in answer.stdout.splitlines() if line.startswith("VER")]
    assert lines == [["VER002", "role"], ["VER003", "parameter"]], answer.stdout
    assert "exit status 1" in answer.stdout
    wait_for(lambda: not (tmp_path / "sandbox.env").exists())  # the sandbox stopped and removed its file
