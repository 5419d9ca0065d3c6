"""The demo history: six months of releases of five services, with the mistakes real teams make.

Everything is laid down through the sandbox's own AWS API (and the registry protocol for images), with the clock
moved back six months and forward release by release, so every timestamp, deployment and event is the kind AWS
would have recorded. What it seeds is described by :data:`DEMO`, which tests and the policy suite rely on:

- cluster ``demo`` with services ``web``, ``api`` (circuit breaker with rollback, IMMUTABLE repositories with scan on
  push and a lifecycle policy) and ``worker`` (no circuit breaker; MUTABLE repository without scanning or lifecycle
  policy; its live revision runs ``worker:latest``);
- one commit per release, tagged with its 12-digit SHA, one revision per image;
- ``web`` once released a commit whose image was never pushed: the circuit breaker rolled it back, and the bad
  revision was deregistered afterwards;
- old revisions deregistered (INACTIVE) and the oldest ones deleted, so revision numbers do not start at 1;
- ``checkout`` deploys BLUE_GREEN behind an Application Load Balancer, with a PAUSE hook after the test traffic
  shift (the team approves every release with ContinueServiceDeployment) and a CloudWatch alarm on its 5xx count: the
  alarm went off in one release's bake time and rolled it back;
- ``search`` deploys CANARY (10 %, then the rest) behind its own load balancer, with a Lambda smoke test after the
  test traffic shift: it failed one release, which rolled back;
- containers hardened (a non-root user, a read-only root filesystem, logs, secrets from SSM): the policy checks'
  hardening group finds nothing, and the release group finds exactly worker's mistakes above.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opskit.sandbox.alb import AlbSetup, make_alb
from opskit.sandbox.ecs.runner import SIMULATED_LABEL

if TYPE_CHECKING:
    from opskit.sandbox.sandbox import Sandbox

SHA_LENGTH = 12
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HISTORY = timedelta(days=180)


@dataclass(frozen=True)
class DemoService:
    name: str
    releases: int  # commits released over the history
    desired: int
    circuit_breaker: bool
    mutability: str
    scan_on_push: bool
    lifecycle_policy: bool
    keep_active: int  # the newest revisions left ACTIVE; older ones are deregistered
    delete_oldest: int  # the oldest revisions deleted outright
    latest_last: bool = False  # the last release registered with the ``latest`` tag
    broken_release: int | None = None  # the release (1-based) whose image was never pushed
    strategy: str = "ROLLING"  # BLUE_GREEN and CANARY stand behind a load balancer of their own
    hook: str | None = None  # "PAUSE" or "AWS_LAMBDA": a lifecycle hook after the test traffic shift
    alarm: bool = False  # a CloudWatch alarm on the 5xx count (``<name>-5xx``) rolls a deployment back
    alarm_release: int | None = None  # the release whose bake time the alarm went off in
    hook_failed_release: int | None = None  # the release the Lambda hook failed

    @property
    def rolled_back_release(self) -> int | None:
        """The release that failed and was rolled back (by the circuit breaker, the alarm or the hook), if any."""
        return self.broken_release or self.alarm_release or self.hook_failed_release

    @property
    def alarm_name(self) -> str:
        return f"{self.name}-5xx"

    @property
    def function_name(self) -> str:
        return f"{self.name}-smoke-test"


@dataclass(frozen=True)
class Demo:
    cluster: str
    services: tuple[DemoService, ...]

    def service(self, name: str) -> DemoService:
        return next(s for s in self.services if s.name == name)


# fmt: off
DEMO = Demo(
    cluster="demo",
    services=(
        DemoService("web", 30, 2, True, "IMMUTABLE", True, True, keep_active=10, delete_oldest=5, broken_release=27),
        DemoService("api", 24, 2, True, "IMMUTABLE", True, True, keep_active=8, delete_oldest=0),
        DemoService("worker", 14, 1, False, "MUTABLE", False, False, keep_active=6, delete_oldest=0, latest_last=True),
        DemoService("checkout", 8, 2, True, "IMMUTABLE", True, True, keep_active=5, delete_oldest=0,
                    strategy="BLUE_GREEN", hook="PAUSE", alarm=True, alarm_release=6),
        DemoService("search", 6, 2, True, "IMMUTABLE", True, True, keep_active=4, delete_oldest=0,
                    strategy="CANARY", hook="AWS_LAMBDA", hook_failed_release=4),
    ),
)
# fmt: on

# How the traffic-shifting services deploy (sandbox minutes; each stage of ECS's takes a few seconds more).
BAKE_MINUTES = 10
CANARY = {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5}
HOOK_STAGE = "POST_TEST_TRAFFIC_SHIFT"
PAUSE_TIMEOUT = {"timeoutInMinutes": 60, "action": "ROLLBACK"}  # unapproved for an hour: rolled back
DONE = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
ROLLOUT_STEP = timedelta(minutes=4)  # between looks at a traffic-shifting rollout (less than its bake time)
HOOK_WAIT = 30.0  # wall seconds the clock waits for a Lambda hook's answer before it moves on regardless

SMOKE_TEST = """\
import os


def handler(event, context):
    # search's smoke test, run by ECS after the test traffic shift. The demo makes it fail once, as a test that
    # caught a broken release would, by setting SMOKE_TEST=fail in the function's environment for that release.
    if os.environ.get("SMOKE_TEST") == "fail":
        return {"hookStatus": "FAILED"}
    return {"hookStatus": "SUCCEEDED"}
"""
LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)

LIFECYCLE_POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "expire untagged images after 14 days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
            "action": {"type": "expire"},
        }
    ]
}


def commit_sha(service: str, release: int) -> str:
    """A stable, realistic-looking commit SHA for the demo's history."""
    return hashlib.sha1(f"{service}-{release}".encode()).hexdigest()


def seed_demo(sandbox: Sandbox) -> None:
    """Lay down :data:`DEMO` in ``sandbox``; takes a few seconds and is never throttled."""
    region = sandbox.region
    assert region is not None
    runner, region.services.runner = region.services.runner, None  # history is simulated, not run
    try:
        with sandbox.throttle.suspended():
            _History(sandbox).lay_down()
    finally:
        region.services.runner = runner


class _History:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.clients = _Clients(sandbox)
        self.ecs = self.clients.client("ecs")
        self.ecr = self.clients.client("ecr")
        self.aws = sandbox.aws()  # what the installed botocore may not model yet (PAUSE hooks) goes as raw JSON
        self.uris: dict[str, str] = {}
        self.albs: dict[str, AlbSetup] = {}
        self.hooks: dict[str, dict[str, Any]] = {}
        self.pusher = _Pusher(sandbox, self.ecr) if sandbox.registry is not None else None
        assert sandbox.region is not None
        self.lambdas = sandbox.region.lambdas

    def lay_down(self) -> None:
        clock = self.sandbox.clock
        end = clock.now()
        clock.set(end - HISTORY)
        self.ecs.create_cluster(clusterName=DEMO.cluster)
        logs = self.clients.client("logs")
        for number, service in enumerate(DEMO.services, start=1):
            self._repository(service)
            logs.create_log_group(logGroupName=f"/ecs/{service.name}")  # where its revisions' awslogs write
            if service.strategy != "ROLLING":
                self._traffic(service, number)
        # Releases of the three services interleave over the months, as they would in one team.
        schedule = sorted(
            (HISTORY * (index / (service.releases + 1)), service.name, index)
            for service in DEMO.services
            for index in range(1, service.releases + 1)
        )
        start = clock.now()
        for offset, name, index in schedule:
            moment = start + offset
            if moment > clock.now():
                clock.advance(moment - clock.now())
            self._release(DEMO.service(name), index)
        clock.advance(timedelta(hours=6))  # the last rollouts finish
        for service in DEMO.services:
            self._retire_old_revisions(service)
        if end > clock.now():
            clock.advance(end - clock.now())

    def _repository(self, service: DemoService) -> None:
        answer = self.ecr.create_repository(
            repositoryName=service.name,
            imageTagMutability=service.mutability,
            imageScanningConfiguration={"scanOnPush": service.scan_on_push},
        )
        self.uris[service.name] = answer["repository"]["repositoryUri"]
        if service.lifecycle_policy:
            self.ecr.put_lifecycle_policy(repositoryName=service.name, lifecyclePolicyText=json.dumps(LIFECYCLE_POLICY))

    def _traffic(self, service: DemoService, number: int) -> None:
        """What a traffic-shifting service stands on: its load balancer, its alarm, its hook's function."""
        alb = self.albs[service.name] = make_alb(self.clients, service.name, cidr=f"10.{number}.0.0/16")
        if service.alarm:
            self.clients.client("cloudwatch").put_metric_alarm(
                AlarmName=service.alarm_name,
                AlarmDescription=f"{service.name} answers with 5xx errors",
                Namespace="AWS/ApplicationELB",
                MetricName="HTTPCode_Target_5XX_Count",
                Dimensions=[{"Name": "LoadBalancer", "Value": alb.load_balancer_arn.split(":loadbalancer/", 1)[1]}],
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=10,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
            )
        if service.hook == "PAUSE":
            self.hooks[service.name] = {
                "targetType": "PAUSE",
                "lifecycleStages": [HOOK_STAGE],
                "timeoutConfiguration": PAUSE_TIMEOUT,
            }
        elif service.hook == "AWS_LAMBDA":
            role = self.clients.client("iam").create_role(
                RoleName=service.function_name, AssumeRolePolicyDocument=LAMBDA_TRUST
            )["Role"]["Arn"]
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as zipped:
                zipped.writestr("smoke.py", SMOKE_TEST)
            function = self.clients.client("lambda").create_function(
                FunctionName=service.function_name,
                Runtime="python3.12",
                Role=role,
                Handler="smoke.handler",
                Code={"ZipFile": archive.getvalue()},
                Timeout=30,
                Environment={"Variables": {"SMOKE_TEST": "pass"}},
            )["FunctionArn"]
            self.hooks[service.name] = {
                "targetType": "AWS_LAMBDA",
                "hookTargetArn": function,
                "roleArn": f"arn:aws:iam::{self.sandbox.account_id}:role/ecsLifecycleHooks",
                "lifecycleStages": [HOOK_STAGE],
            }

    def _deployment_configuration(self, service: DemoService) -> dict[str, Any]:
        config: dict[str, Any] = {
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": service.circuit_breaker, "rollback": service.circuit_breaker},
        }
        if service.strategy == "ROLLING":
            return config
        config.update(strategy=service.strategy, bakeTimeInMinutes=BAKE_MINUTES)
        if service.strategy == "CANARY":
            config["canaryConfiguration"] = CANARY
        if service.name in self.hooks:
            config["lifecycleHooks"] = [self.hooks[service.name]]
        if service.alarm:
            config["alarms"] = {"alarmNames": [service.alarm_name], "enable": True, "rollback": True}
        return config

    def _release(self, service: DemoService, index: int) -> None:
        sha = commit_sha(service.name, index)[:SHA_LENGTH]
        latest = service.latest_last and index == service.releases
        tag = "latest" if latest else sha
        if index != service.broken_release:
            self._push(service.name, tag, sha)
        image = f"{self.uris[service.name]}:{tag}"
        body = self.ecs.register_task_definition(
            family=service.name,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            executionRoleArn=f"arn:aws:iam::{self.sandbox.account_id}:role/ecsTaskExecutionRole",
            containerDefinitions=[
                {
                    "name": service.name,
                    "image": image,
                    "essential": True,
                    # Hardened as Security Hub asks (the checks' hardening group finds nothing here).
                    "user": "1000:1000",
                    "readonlyRootFilesystem": True,
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}] if service.name != "worker" else [],
                    "environment": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "RELEASE", "value": sha},
                    ],
                    "secrets": [
                        {
                            "name": "DATABASE_URL",
                            "valueFrom": f"arn:aws:ssm:{self.sandbox.region_name}:{self.sandbox.account_id}"
                            f":parameter/{service.name}/database-url",
                        }
                    ],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": f"/ecs/{service.name}",
                            "awslogs-region": self.sandbox.region_name,
                            "awslogs-stream-prefix": service.name,
                        },
                    },
                }
            ],
            tags=[{"key": "commit", "value": sha}],
        )["taskDefinition"]
        arn = body["taskDefinitionArn"]
        alb = self.albs.get(service.name)
        smoke_fails = index == service.hook_failed_release
        if smoke_fails:
            self._smoke_test(service, "fail")
        if index == 1:
            params: dict[str, Any] = {
                "cluster": DEMO.cluster,
                "serviceName": service.name,
                "taskDefinition": arn,
                "desiredCount": service.desired,
                "launchType": "FARGATE",
                "networkConfiguration": {
                    "awsvpcConfiguration": {
                        "subnets": list(alb.subnet_ids) if alb else ["subnet-0demo"],
                        "assignPublicIp": "DISABLED",
                    }
                },
                "deploymentConfiguration": self._deployment_configuration(service),
            }
            if alb is not None:
                params["loadBalancers"] = [alb.load_balancer(container_name=service.name)]
            self.aws.call_json("ecs", "CreateService", params)
        else:
            self.ecs.update_service(cluster=DEMO.cluster, service=service.name, taskDefinition=arn)
        # Each rollout settles (or fails and rolls back) before the next release: an hour of sandbox time.
        if alb is None:
            self.sandbox.clock.advance(timedelta(hours=1))
        else:
            self._roll_out(service, index)
        if smoke_fails:
            self._smoke_test(service, "pass")
        if index == service.broken_release:
            self.ecs.deregister_task_definition(taskDefinition=arn)

    def _roll_out(self, service: DemoService, index: int) -> None:
        """Follow a traffic-shifting rollout for an hour of sandbox time as its team would: approve its PAUSE hook,
        wait for its Lambda hook's answer, and in the release that broke something see the alarm go off."""
        clock, cloudwatch = self.sandbox.clock, self.clients.client("cloudwatch")
        started = clock.now()
        (described,) = self.ecs.describe_services(cluster=DEMO.cluster, services=[service.name])["services"]
        arn = described["currentServiceDeployment"]
        alarm_fires, fired, waited = index == service.alarm_release, False, False
        while clock.now() - started < timedelta(hours=1):
            (record,) = self.aws.call_json("ecs", "DescribeServiceDeployments", {"serviceDeploymentArns": [arn]})[
                "serviceDeployments"
            ]
            if record["status"] in DONE:
                break
            hooks = record.get("lifecycleHookDetails") or []
            for hook in hooks:
                if hook["status"] == "AWAITING_ACTION":
                    self.aws.call_json(
                        "ecs",
                        "ContinueServiceDeployment",
                        {"serviceDeploymentArn": arn, "hookId": hook["hookId"], "action": "CONTINUE"},
                    )
            # A Lambda hook's function runs in a child process, in wall time: the clock waits for its answer.
            if not waited and any(h["status"] == "IN_PROGRESS" and h["targetType"] == "AWS_LAMBDA" for h in hooks):
                waited = self.lambdas.wait(HOOK_WAIT)
                continue
            waited = False
            if alarm_fires and not fired and record.get("lifecycleStage") == "BAKE_TIME":
                cloudwatch.set_alarm_state(
                    AlarmName=service.alarm_name,
                    StateValue="ALARM",
                    StateReason="Threshold Crossed: 1 datapoint [37.0] was greater than the threshold (10.0).",
                )
                fired = True
            clock.advance(ROLLOUT_STEP)
        if fired:
            cloudwatch.set_alarm_state(
                AlarmName=service.alarm_name,
                StateValue="OK",
                StateReason="Threshold Crossed: 1 datapoint [0.0] was not greater than the threshold (10.0).",
            )
        rest = started + timedelta(hours=1) - clock.now()
        if rest > timedelta(0):
            clock.advance(rest)

    def _smoke_test(self, service: DemoService, result: str) -> None:
        self.clients.client("lambda").update_function_configuration(
            FunctionName=service.function_name, Environment={"Variables": {"SMOKE_TEST": result}}
        )

    def _retire_old_revisions(self, service: DemoService) -> None:
        arns = [
            arn
            for page in self.ecs.get_paginator("list_task_definitions").paginate(familyPrefix=service.name)
            for arn in page["taskDefinitionArns"]
        ]
        live = {
            d["taskDefinition"]
            for s in self.ecs.describe_services(cluster=DEMO.cluster, services=[service.name])["services"]
            for d in s["deployments"]
        }
        retire = [arn for arn in arns[: max(0, len(arns) - service.keep_active)] if arn not in live]
        for arn in retire:
            self.ecs.deregister_task_definition(taskDefinition=arn)
        doomed = [f"{service.name}:{n}" for n in range(1, service.delete_oldest + 1)]
        for start in range(0, len(doomed), 10):
            self.ecs.delete_task_definitions(taskDefinitions=doomed[start : start + 10])

    def _push(self, repository: str, tag: str, sha: str) -> None:
        config, layer = _image(sha)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_GZIP, "size": len(layer), "digest": _digest(layer)}],
        }
        manifest_bytes = json.dumps(manifest, indent=3).encode()
        if self.pusher is not None:
            self.pusher.push(repository, tag, [config, layer], manifest_bytes)
        else:
            self.ecr.put_image(
                repositoryName=repository,
                imageManifest=manifest_bytes.decode(),
                imageManifestMediaType=MANIFEST_V2,
                imageTag=tag,
            )


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _image(sha: str) -> tuple[bytes, bytes]:
    """A tiny image: one layer holding the commit it was built from, and a config that labels it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = f"{sha}\n".encode()
        info = tarfile.TarInfo("etc/commit")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    layer = gzip.compress(uncompressed, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Cmd": ["/bin/sh"],
                # The demo's images hold a file, not a program: the sandbox runs their tasks simulated.
                "Labels": {"org.opencontainers.image.revision": sha, SIMULATED_LABEL: "true"},
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(uncompressed)]},
        }
    ).encode()
    return config, layer


class _Clients:
    """The sandbox as the history (and :func:`~opskit.sandbox.alb.make_alb`) uses it, with one boto3 client per
    service: a new one costs tens of milliseconds, and the history calls eight services."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.region_name, self.account_id = sandbox.region_name, sandbox.account_id
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.sandbox.client(service)
        return self._clients[service]


class _Pusher:
    """Pushes an image over the registry protocol through the sandbox's ECR endpoint, as ``docker push`` would."""

    def __init__(self, sandbox: Sandbox, ecr: Any) -> None:
        self.base = sandbox.endpoint_url
        self.ecr = ecr
        self.auth = ""

    def _login(self) -> None:
        # A token lasts 12 h of sandbox time and seeding moves the clock by months: a fresh one per image.
        token = self.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        self.auth = "Basic " + token

    def _call(self, method: str, url: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        request = urllib.request.Request(url if url.startswith("http") else self.base + url, data=body, method=method)
        request.add_header("Authorization", self.auth)
        if content_type:
            request.add_header("Content-Type", content_type)
        return urllib.request.urlopen(request, timeout=30)

    def push(self, repository: str, tag: str, blobs: list[bytes], manifest: bytes) -> None:
        self._login()
        for blob in blobs:
            # Every demo blob is new (it holds its commit): no existence check, straight to the upload.
            digest = _digest(blob)
            with self._call("POST", f"/v2/{repository}/blobs/uploads/", b"") as answer:
                location = answer.headers["Location"]
            separator = "&" if "?" in location else "?"
            self._call("PUT", f"{location}{separator}digest={digest}", blob, "application/octet-stream").close()
        self._call("PUT", f"/v2/{repository}/manifests/{tag}", manifest, MANIFEST_V2).close()


__all__ = ["DEMO", "SHA_LENGTH", "commit_sha", "seed_demo"]
