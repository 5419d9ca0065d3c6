"""A preflight for a task-definition revision: what ECS would refuse, or what would fail at the rollout, found before
anything is built, registered or deployed.

:func:`verify` reads a register body (:func:`opskit.release.taskdef.registrable`'s, or a file's) and, for a service,
its DescribeServices entry, and looks up only what they name, each resource once:

- VER001 images: each image in this account's ECR exists (and is not archived) and, where its index tells the
  platforms, holds the revision's (``runtimePlatform``, else linux/amd64). Images elsewhere are not looked at.
- VER002 roles: ``executionRoleArn`` and ``taskRoleArn`` exist and trust ``ecs-tasks.amazonaws.com``; an execution
  role is there where ECS demands one (secrets; on Fargate, awslogs and ECR images).
- VER003 secrets: each ``valueFrom`` (container secrets, log secretOptions, repositoryCredentials) names an SSM
  parameter or a Secrets Manager secret that exists (its version stage or id too); no value is decrypted.
- VER004 log groups: each awslogs group exists in its region, unless ``awslogs-create-group`` is "true".
- VER005 load balancers: each of the service's loadBalancers names a container and a port it maps, and a target
  group ECS can register the tasks in (target type for the network mode, protocol, attached to a load balancer).
- VER006 Fargate: where Fargate is asked for, a valid task cpu/memory pair and the awsvpc network mode.

A permission the caller lacks is one warning per permission, naming it; the checks that needed it are skipped.

A typical revision (one container with its image in ECR, an execution and a task role, two secrets, one in SSM
and one in Secrets Manager, an awslogs group, one target group) costs 8 calls: GetAuthorizationToken (none when a
``gateway`` that has asked already is passed), DescribeImages, GetRole twice, GetParameters (up to 10 parameters
a region per call), DescribeSecret (one per secret), DescribeLogGroups (one per group) and DescribeTargetGroups
(all of a service's in one); one BatchGetImage more for an image index.

>>> findings = verify(aws, body, cluster="prod", service=service)                  # doctest: +SKIP
>>> [f.message for f in findings if f.error]
["the secret does not exist: create it or fix valueFrom of web's DB_PASSWORD"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

from opskit.aws import Aws
from opskit.aws_errors import DENIED_CODES
from opskit.errors import AwsError, ConfigError
from opskit.gateway import Gateway
from opskit.records import ImageRef

Severity = Literal["error", "warning"]
T = TypeVar("T")

ECS_TASKS = "ecs-tasks.amazonaws.com"
INDEX_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
PARAMETERS_PER_CALL = 10  # GetParameters' limit
FARGATE_PROVIDERS = frozenset({"FARGATE", "FARGATE_SPOT"})
ARCHITECTURES = {"X86_64": "amd64", "ARM64": "arm64"}

# Fargate's task sizes: cpu units -> (lowest memory MiB, highest, step). From AWS's table of valid CPU and memory
# combinations for Fargate ("Troubleshoot Amazon ECS task definition invalid CPU or memory errors",
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-cpu-memory-error.html, and RegisterTaskDefinition's
# `memory`): 256 has 512, 1024 and 2048 only; 8192 and 16384 need Linux (platform 1.4.0 or later); Windows
# containers on Fargate need 1 vCPU at least.
FARGATE_SIZES: dict[int, tuple[int, int, int]] = {
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}
FARGATE_256 = (512, 1024, 2048)
FARGATE_WINDOWS_CPU = frozenset({1024, 2048, 4096})


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a revision: ``check`` (VER001..VER006), the ``resource`` it is about, one line that says
    what is wrong and what to do, and whether ECS would refuse it or the rollout fail (``error``) or it may
    (``warning``, also a check that could not run for want of a permission)."""

    check: str
    resource: str
    message: str
    severity: Severity = "error"

    @property
    def error(self) -> bool:
        return self.severity == "error"

    def line(self, width: int = 0) -> str:
        """``VER003  secret arn:...  the secret does not exist: ...``, the resource padded to ``width``."""
        return f"{self.check}  {self.resource.ljust(width)}  {self.message}"

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def verify(
    aws: Aws,
    body: dict[str, Any],
    *,
    cluster: str | None = None,
    service: dict[str, Any] | None = None,
    platform: str | None = None,
    gateway: Gateway | None = None,
) -> list[Finding]:
    """What is wrong with the revision ``body`` (a RegisterTaskDefinition body) for ``service`` (its DescribeServices
    entry, for its load balancers and launch type) in ``cluster``: errors first, in check order.

    ``platform`` (``linux/arm64``) overrides the revision's runtimePlatform; ``gateway`` shares a plan's (its
    registry credentials). ``cluster`` names where the service runs, in what the findings say. Missing permissions
    are warnings, never exceptions; other AWS failures raise :class:`~opskit.errors.AwsError` as usual."""
    checks = _Verifier(aws, body, cluster, service, platform, gateway or Gateway(aws))
    return checks.run()


class _Denied(Exception):
    """A call refused for want of a permission (already reported once)."""


class _Verifier:
    def __init__(
        self,
        aws: Aws,
        body: dict[str, Any],
        cluster: str | None,
        service: dict[str, Any] | None,
        platform: str | None,
        gateway: Gateway,
    ) -> None:
        self.aws = aws
        self.body = body
        self.service = service
        name = (service or {}).get("serviceName")
        self.service_name = f"service {cluster}/{name}" if cluster and name else f"service {name or '?'}"
        self.gateway = gateway
        self.containers: list[dict[str, Any]] = [
            c for c in body.get("containerDefinitions") or [] if isinstance(c, dict)
        ]
        self.platform = _platform(body, platform)
        self.network_mode = str(body.get("networkMode") or "bridge")
        self.fargate = _wants_fargate(body, service)
        self.findings: list[Finding] = []
        self._denied: set[str] = set()
        self._regions: dict[str, Aws] = {}
        self._registry: str | None = None

    def run(self) -> list[Finding]:
        for check in (self._images, self._roles, self._secrets, self._log_groups, self._load_balancers, self._fargate):
            check()
        order = {"error": 0, "warning": 1}
        return sorted(self.findings, key=lambda f: (order[f.severity], f.check))

    # -- plumbing -----------------------------------------------------------------------------------------------------
    def _add(self, check: str, resource: str, message: str, severity: Severity = "error") -> None:
        self.findings.append(Finding(check, resource, message, severity))

    def _ask(self, check: str, permission: str, what: str, call: Callable[[], T]) -> T:
        """``call()``; a refusal for want of ``permission`` is one warning (per permission) and :class:`_Denied`."""
        try:
            return call()
        except AwsError as exc:
            if exc.code not in DENIED_CODES:
                raise
            if permission not in self._denied:
                self._denied.add(permission)
                self._add(
                    check,
                    f"permission {permission}",
                    f"AWS denied it, so {what} went unchecked: grant {permission} to whoever runs the verify",
                    "warning",
                )
            raise _Denied from exc

    def _in(self, region: str | None) -> Aws:
        """The AWS of ``region`` (the same credentials, endpoint and retries); the caller's own by default."""
        if not region or region == self.aws.region:
            return self.aws
        if region not in self._regions:
            self._regions[region] = dataclasses.replace(self.aws, region=region)
        return self._regions[region]

    def _registry_host(self) -> str | None:
        """This account's ECR registry host (GetAuthorizationToken, asked once), or None when refused."""
        if self._registry is None:
            try:
                self._registry = self._ask(
                    "VER001", "ecr:GetAuthorizationToken", "the images", lambda: self.gateway.registry_auth().host
                )
            except _Denied:
                self._registry = ""
        return self._registry or None

    # -- VER001 images ------------------------------------------------------------------------------------------------
    def _images(self) -> None:
        refs: dict[str, tuple[ImageRef, list[str]]] = {}
        for container in self.containers:
            image = str(container.get("image") or "")
            ref = ImageRef.parse(image)
            if image and ref.registry is not None:  # no registry: Docker Hub's, not this account's ECR
                refs.setdefault(image, (ref, []))[1].append(str(container.get("name")))
        if not refs:
            return
        host = self._registry_host()
        for image, (ref, names) in refs.items():
            if host is None or ref.registry != host:
                continue  # another registry (or another account's or region's ECR): not checked
            with contextlib.suppress(_Denied):
                self._image(image, ref, names)

    def _image(self, image: str, ref: ImageRef, names: list[str]) -> None:
        image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
        detail = self._ask(
            "VER001", "ecr:DescribeImages", "the images", lambda: self.gateway.image(ref.repository, image_id)
        )
        who = _containers(names)
        if detail is None:
            missing = f"digest {ref.digest}" if ref.digest else f"tag {ref.tag or 'latest'}"
            self._add(
                "VER001",
                f"image {image}",
                f"{who} image is not in ECR (no {missing} in repository {ref.repository}): push it, or point the "
                "container at an image that is there",
            )
            return
        status = detail.get("imageStatus")
        if status == "ARCHIVED":
            self._add(
                "VER001",
                f"image {image}",
                f"{who} image is archived in ECR and cannot be pulled: restore it (UpdateImageStorageClass to "
                "STANDARD) before the rollout, or release another image",
            )
            return
        if status == "ACTIVATING":
            self._add(
                "VER001",
                f"image {image}",
                f"{who} image is being restored from the archive and cannot be pulled yet: wait until it is ACTIVE",
                "warning",
            )
        if detail.get("imageManifestMediaType") in INDEX_TYPES:
            self._platforms(image, ref, str(detail["imageDigest"]), str(detail["imageManifestMediaType"]), who)

    def _platforms(self, image: str, ref: ImageRef, digest: str, media_type: str, who: str) -> None:
        answer = self._ask(
            "VER001",
            "ecr:BatchGetImage",
            "the images' platforms",
            lambda: self.aws.client("ecr").batch_get_image(
                repositoryName=ref.repository, imageIds=[{"imageDigest": digest}], acceptedMediaTypes=[media_type]
            ),
        )
        found = answer.get("images") or []
        if not found:
            return
        try:
            index = json.loads(found[0].get("imageManifest") or "{}")
        except ValueError:
            return
        platforms = [
            (str(p.get("os", "")), str(p.get("architecture", "")))
            for m in index.get("manifests") or []
            if isinstance(m, dict) and isinstance(p := m.get("platform"), dict) and p.get("os") not in (None, "unknown")
        ]
        if platforms and self.platform not in platforms:
            has = ", ".join(sorted({f"{os}/{arch}" for os, arch in platforms}))
            wanted = "/".join(self.platform)
            self._add(
                "VER001",
                f"image {image}",
                f"{who} image is built for {has}, not {wanted}, which the revision runs on: push it for {wanted}, "
                "or set runtimePlatform to one it has",
            )

    # -- VER002 roles -------------------------------------------------------------------------------------------------
    def _roles(self) -> None:
        execution = self.body.get("executionRoleArn")
        if not execution:
            self._execution_role_needed()
        roles: dict[str, list[str]] = {}
        for field in ("executionRoleArn", "taskRoleArn"):
            value = self.body.get(field)
            if isinstance(value, str) and value:
                roles.setdefault(value, []).append(field)
        for reference, fields in roles.items():
            with contextlib.suppress(_Denied):
                self._role(reference, fields)

    def _execution_role_needed(self) -> None:
        family = f"task definition {self.body.get('family', '?')}"
        why = []
        if any(_secret_references(c) for c in self.containers):
            why.append("its containers read secrets")
        if self.fargate:
            if any((c.get("logConfiguration") or {}).get("logDriver") == "awslogs" for c in self.containers):
                why.append("Fargate writes awslogs with it")
            if any(self._in_ecr(str(c.get("image") or "")) for c in self.containers):
                why.append("Fargate pulls ECR images with it")
        if why:
            self._add(
                "VER002",
                family,
                f"the revision has no executionRoleArn, which ECS needs ({'; '.join(why)}): set executionRoleArn to a "
                f"role that trusts {ECS_TASKS} (AmazonECSTaskExecutionRolePolicy)",
            )

    def _in_ecr(self, image: str) -> bool:
        registry = ImageRef.parse(image).registry
        return registry is not None and (".dkr.ecr." in registry or registry == self._registry_host())

    def _role(self, reference: str, fields: list[str]) -> None:
        name = reference.rsplit("/", 1)[-1]
        which = " and ".join(fields)
        try:
            role = self._ask(
                "VER002",
                "iam:GetRole",
                "the roles",
                lambda: self.aws.client("iam").get_role(RoleName=name)["Role"],
            )
        except AwsError as exc:
            if exc.code != "NoSuchEntity":
                raise
            self._add(
                "VER002",
                f"role {reference}",
                f"the role does not exist: create it (trusting {ECS_TASKS}) or fix {which}",
            )
            return
        if reference.startswith("arn:") and role.get("Arn") and role["Arn"] != reference:
            self._add(
                "VER002",
                f"role {reference}",
                f"no role has this ARN (IAM's role {name} is {role['Arn']}): fix {which}",
            )
            return
        if not _trusts_ecs_tasks(role.get("AssumeRolePolicyDocument")):
            self._add(
                "VER002",
                f"role {reference}",
                f"the role's trust policy does not let {ECS_TASKS} assume it, so tasks cannot use it as {which}: "
                f"allow sts:AssumeRole to the service principal {ECS_TASKS}",
            )

    # -- VER003 secrets -----------------------------------------------------------------------------------------------
    def _secrets(self) -> None:
        parameters: dict[str | None, dict[str, list[str]]] = {}  # region -> name or ARN -> where it is read
        secrets: dict[str, list[str]] = {}
        for container in self.containers:
            for where, value_from in _secret_references(container):
                arn = _arn(value_from)
                if arn is not None and arn[2] == "secretsmanager":
                    secrets.setdefault(value_from, []).append(where)
                elif arn is not None and arn[2] != "ssm":
                    self._add(
                        "VER003",
                        f"secret {value_from}",
                        f"{where} names an ARN of {arn[2]}, and ECS reads secrets from SSM Parameter Store and "
                        "Secrets Manager only: fix valueFrom",
                    )
                else:
                    region = arn[3] if arn is not None and arn[3] != self.aws.region else None
                    parameters.setdefault(region, {}).setdefault(value_from, []).append(where)
        for region, names in parameters.items():
            with contextlib.suppress(_Denied):
                self._parameters(region, names)
        for value_from, readers in secrets.items():
            with contextlib.suppress(_Denied):
                self._secret(value_from, readers)

    def _parameters(self, region: str | None, names: dict[str, list[str]]) -> None:
        wanted = list(names)
        for start in range(0, len(wanted), PARAMETERS_PER_CALL):
            self._parameter_batch(region, wanted[start : start + PARAMETERS_PER_CALL], names)

    def _parameter_batch(self, region: str | None, batch: list[str], names: dict[str, list[str]]) -> None:
        ssm = self._in(region).client("ssm")
        try:
            # The values come back (SecureString ones encrypted: nothing is decrypted) and are dropped here.
            answer = self._ask(
                "VER003",
                "ssm:GetParameters",
                "the SSM parameters",
                functools.partial(ssm.get_parameters, Names=batch, WithDecryption=False),
            )
        except AwsError as exc:
            if exc.code != "ValidationException":
                raise
            if len(batch) > 1:  # one of them is no name SSM takes: which one, one call each
                for name in batch:
                    self._parameter_batch(region, [name], names)
                return
            self._add(
                "VER003",
                f"parameter {batch[0]}",
                f"SSM refuses it as a parameter name or ARN ({exc.aws_message}): fix valueFrom{_of(names[batch[0]])}",
            )
            return
        where = f" in {region}" if region else ""
        for missing in answer.get("InvalidParameters") or []:
            self._add(
                "VER003",
                f"parameter {missing}",
                f"the SSM parameter does not exist{where}: create it or fix valueFrom{_of(names.get(missing, []))}",
            )

    def _secret(self, value_from: str, where: list[str]) -> None:
        arn, stage, version = _secret_parts(value_from)
        region = (_arn(arn) or ("", "", "", None))[3]
        client = self._in(region).client("secretsmanager")
        try:
            found = self._ask(
                "VER003",
                "secretsmanager:DescribeSecret",
                "the Secrets Manager secrets",
                lambda: client.describe_secret(SecretId=arn),
            )
        except AwsError as exc:
            if exc.code not in ("ResourceNotFoundException", "ValidationException"):
                raise
            problem = "does not exist" if exc.code == "ResourceNotFoundException" else "is not a secret's ARN"
            self._add("VER003", f"secret {arn}", f"the secret {problem}: create it or fix valueFrom{_of(where)}")
            return
        if found.get("DeletedDate"):
            self._add(
                "VER003",
                f"secret {arn}",
                f"the secret is scheduled for deletion: restore it (RestoreSecret) or fix valueFrom{_of(where)}",
            )
            return
        versions: dict[str, list[str]] = found.get("VersionIdsToStages") or {}
        if version and version not in versions:
            self._add(
                "VER003",
                f"secret {arn}",
                f"the secret has no version {version}: fix the version id in valueFrom{_of(where)}",
            )
        elif stage and not any(stage in stages for v, stages in versions.items() if not version or v == version):
            self._add(
                "VER003",
                f"secret {arn}",
                f"the secret has no version labelled {stage}: label one, or fix the version stage in valueFrom"
                f"{_of(where)}",
            )

    # -- VER004 log groups --------------------------------------------------------------------------------------------
    def _log_groups(self) -> None:
        groups: dict[tuple[str, str], list[str]] = {}
        for container in self.containers:
            config = container.get("logConfiguration") or {}
            if config.get("logDriver") != "awslogs":
                continue
            options = config.get("options") or {}
            name = str(container.get("name"))
            group = options.get("awslogs-group")
            if not group:
                self._add(
                    "VER004",
                    f"container {name}",
                    "its awslogs log configuration has no awslogs-group option, which the driver needs: add it",
                )
                continue
            if str(options.get("awslogs-create-group", "")).lower() == "true":
                continue  # the execution role creates it (logs:CreateLogGroup; not checked here)
            region = str(options.get("awslogs-region") or self.aws.region)
            groups.setdefault((region, str(group)), []).append(name)
        for (region, group), names in groups.items():
            with contextlib.suppress(_Denied):
                self._log_group(region, group, names)

    def _log_group(self, region: str, group: str, names: list[str]) -> None:
        logs = self._in(region).client("logs")
        # Log groups come ASCII-sorted by name: the group itself, when it exists, is the first with its name as prefix.
        answer = self._ask(
            "VER004",
            "logs:DescribeLogGroups",
            "the log groups",
            lambda: logs.describe_log_groups(logGroupNamePrefix=group, limit=5),
        )
        if any(g.get("logGroupName") == group for g in answer.get("logGroups") or []):
            return
        where = f" in {region}" if region != self.aws.region else ""
        self._add(
            "VER004",
            f"log group {group}",
            f"the log group does not exist{where}, so {_containers(names)[:-2]} cannot start: create it, or set "
            'awslogs-create-group to "true" (the execution role then needs logs:CreateLogGroup)',
        )

    # -- VER005 load balancers ----------------------------------------------------------------------------------------
    def _load_balancers(self) -> None:
        entries = [lb for lb in (self.service or {}).get("loadBalancers") or [] if isinstance(lb, dict)]
        if not entries:
            return
        ports = {
            str(c.get("name")): {
                int(m["containerPort"]): str(m.get("protocol") or "tcp").lower()
                for m in c.get("portMappings") or []
                if isinstance(m, dict) and isinstance(m.get("containerPort"), int)
            }
            for c in self.containers
        }
        # target group ARN -> (container, port, the protocol it maps the port with) that it sends traffic to
        groups: dict[str, tuple[str, int, str] | None] = {}
        for entry in entries:
            name, port = str(entry.get("containerName") or ""), entry.get("containerPort")
            mapped = self._mapping(name, port, ports)
            advanced = entry.get("advancedConfiguration") or {}
            for arn in (entry.get("targetGroupArn"), advanced.get("alternateTargetGroupArn")):
                if isinstance(arn, str) and arn:
                    groups.setdefault(arn, None if mapped is None else (name, int(str(port)), mapped))
        if groups:
            with contextlib.suppress(_Denied):
                self._target_groups(groups, {p for mapped in ports.values() for p in mapped})

    def _mapping(self, name: str, port: Any, ports: dict[str, dict[int, str]]) -> str | None:
        """The protocol of container ``name``'s mapping of ``port`` that the load balancer sends to; None (and an
        error) when the revision has no such container or mapping."""
        if name not in ports:
            self._add(
                "VER005",
                f"container {name or '?'}",
                f"{self.service_name} sends its load balancer's traffic to container {name or '(none)'}, which the "
                f"revision does not have (its containers: {', '.join(ports) or 'none'}): fix the container's name or "
                "the service's loadBalancers",
            )
            return None
        if port not in ports[name]:
            self._add(
                "VER005",
                f"container {name}:{port}",
                f"{self.service_name} sends its load balancer's traffic to port {port} of container {name}, which "
                f"maps {_listed(ports[name]) or 'no port'}: add a portMappings entry with containerPort {port}, or "
                "fix the service's loadBalancers",
            )
            return None
        return ports[name][port]

    def _target_groups(self, groups: dict[str, tuple[str, int, str] | None], every_port: set[int]) -> None:
        found = self._describe_target_groups(list(groups))
        for arn, target in groups.items():
            group = found.get(arn)
            resource = f"target group {arn.rsplit(':', 1)[-1]}"
            if group is None:
                self._add(
                    "VER005", resource, "the target group does not exist: create it, or fix the service's loadBalancers"
                )
                continue
            self._target_type(resource, str(group.get("TargetType") or "instance"))
            if not group.get("LoadBalancerArns"):
                self._add(
                    "VER005",
                    resource,
                    "the target group is not attached to a load balancer, and ECS refuses it: forward to it from a "
                    "listener or listener rule first",
                )
            protocol = str(group.get("Protocol") or "")
            if target is not None and protocol in ("HTTP", "HTTPS", "TCP", "TLS", "UDP"):
                container, port, mapped = target
                needs = "udp" if protocol == "UDP" else "tcp"
                if mapped != needs:
                    self._add(
                        "VER005",
                        resource,
                        f"the target group speaks {protocol}, and container {container} maps port {port} as {mapped}: "
                        f"map it as {needs}, or use a target group for {mapped}",
                    )
            elif protocol == "GENEVE":
                self._add(
                    "VER005",
                    resource,
                    "a GENEVE target group (a Gateway Load Balancer's) cannot front ECS tasks: use an ALB's or NLB's",
                )
            health = str(group.get("HealthCheckPort") or "traffic-port")
            if self.network_mode == "awsvpc" and health.isdigit() and every_port and int(health) not in every_port:
                self._add(
                    "VER005",
                    resource,
                    f"the target group checks health on port {health}, which no container of the revision maps "
                    f"({', '.join(map(str, sorted(every_port)))}), so the tasks would fail their health checks: set "
                    "the health check port to traffic-port or to a mapped port",
                    "warning",
                )

    def _target_type(self, resource: str, kind: str) -> None:
        # ECS refuses (InvalidParameterException) a target group of type ip for the bridge or host network mode, and
        # one of type instance for awsvpc ("tasks that use the awsvpc network mode are associated with an elastic
        # network interface, not an Amazon EC2 instance": AWS's ECS developer guide on load balancers).
        if kind == "ip" and self.network_mode != "awsvpc":
            self._add(
                "VER005",
                resource,
                f"the target group's target type is ip, which needs the awsvpc network mode, and the revision's is "
                f"{self.network_mode}: set networkMode to awsvpc, or use a target group of type instance",
            )
        elif kind == "instance" and self.network_mode == "awsvpc":
            self._add(
                "VER005",
                resource,
                "the target group's target type is instance, which tasks of the awsvpc network mode cannot join: use "
                "a target group of type ip",
            )
        elif kind not in ("ip", "instance"):
            self._add(
                "VER005", resource, f"ECS cannot register tasks in a target group of type {kind}: use one of type ip"
            )

    def _describe_target_groups(self, arns: list[str]) -> dict[str, dict[str, Any]]:
        elbv2 = self.aws.client("elbv2")

        def describe(batch: list[str]) -> dict[str, dict[str, Any]]:
            answer = self._ask(
                "VER005",
                "elasticloadbalancing:DescribeTargetGroups",
                "the target groups",
                lambda: elbv2.describe_target_groups(TargetGroupArns=batch),
            )
            return {str(g["TargetGroupArn"]): g for g in answer.get("TargetGroups") or []}

        try:
            return describe(arns)
        except AwsError as exc:
            if exc.code != "TargetGroupNotFound":
                raise
        found: dict[str, dict[str, Any]] = {}  # one is missing: which one, one call each
        for arn in arns:
            try:
                found.update(describe([arn]))
            except AwsError as exc:
                if exc.code != "TargetGroupNotFound":
                    raise
        return found

    # -- VER006 Fargate -----------------------------------------------------------------------------------------------
    def _fargate(self) -> None:
        if not self.fargate:
            return
        if self.network_mode != "awsvpc":
            self._add(
                "VER006",
                f"network mode {self.network_mode}",
                f"Fargate runs tasks of the awsvpc network mode only, and the revision's is {self.network_mode}: "
                "set networkMode to awsvpc",
            )
        cpu, memory = self.body.get("cpu"), self.body.get("memory")
        if cpu in (None, "") or memory in (None, ""):
            self._add(
                "VER006",
                "task size",
                "Fargate needs task-level cpu and memory, and the revision lacks "
                f"{' and '.join(n for n, v in (('cpu', cpu), ('memory', memory)) if v in (None, ''))}: set both to a "
                "pair Fargate offers, such as cpu 256 with memory 512",
            )
            return
        units, mib = _cpu_units(cpu), _memory_mib(memory)
        if units is None or mib is None:
            self._add(
                "VER006",
                f"task size cpu {cpu} memory {memory}",
                "the task's cpu or memory is not a number ECS reads (cpu units or '1 vCPU'; MiB or '2 GB'): fix it",
            )
            return
        problem = _fargate_size_problem(units, mib, windows=self.platform[0] == "windows")
        if problem:
            self._add("VER006", f"task size cpu {units} memory {mib}", problem)


# -- pure helpers ---------------------------------------------------------------------------------------------------
def _platform(body: dict[str, Any], override: str | None) -> tuple[str, str]:
    """(os, architecture) as image indexes name them: ``override`` (``linux/arm64``), else the revision's
    runtimePlatform, else linux/amd64."""
    if override:
        parts = override.strip().lower().split("/")
        if len(parts) < 2 or not all(parts[:2]):
            raise ConfigError(f"platform {override!r} is not OS/ARCHITECTURE: pass one such as linux/arm64")
        return parts[0], parts[1]
    runtime = body.get("runtimePlatform") or {}
    family = str(runtime.get("operatingSystemFamily") or "LINUX")
    arch = ARCHITECTURES.get(str(runtime.get("cpuArchitecture") or "X86_64"), "amd64")
    return ("windows" if family.startswith("WINDOWS") else "linux"), arch


def _wants_fargate(body: dict[str, Any], service: dict[str, Any] | None) -> bool:
    if "FARGATE" in (body.get("requiresCompatibilities") or []):
        return True
    if service is None:
        return False
    strategy = service.get("capacityProviderStrategy") or []
    return service.get("launchType") == "FARGATE" or any(
        isinstance(s, dict) and s.get("capacityProvider") in FARGATE_PROVIDERS for s in strategy
    )


def _secret_references(container: dict[str, Any]) -> list[tuple[str, str]]:
    """(where it is read, valueFrom) of each secret a container reads: its secrets, its log configuration's
    secretOptions, and its private registry's credentials."""
    name = str(container.get("name"))
    out = [
        (f"{name}'s {s.get('name')}", str(s["valueFrom"]))
        for s in container.get("secrets") or []
        if isinstance(s, dict) and s.get("valueFrom")
    ]
    out += [
        (f"{name}'s log option {s.get('name')}", str(s["valueFrom"]))
        for s in (container.get("logConfiguration") or {}).get("secretOptions") or []
        if isinstance(s, dict) and s.get("valueFrom")
    ]
    credentials = (container.get("repositoryCredentials") or {}).get("credentialsParameter")
    if credentials:
        out.append((f"{name}'s registry credentials", str(credentials)))
    return out


def _arn(value: str) -> tuple[str, str, str, str | None] | None:
    """(arn, partition, service, region) of an ARN; None for anything else (an SSM parameter's name)."""
    if not value.startswith("arn:"):
        return None
    parts = value.split(":", 5)
    if len(parts) < 6:
        return None
    return parts[0], parts[1], parts[2], parts[3] or None


def _secret_parts(value_from: str) -> tuple[str, str | None, str | None]:
    """A Secrets Manager valueFrom as (the secret's ARN, version stage, version id): ECS lets
    ``arn:...:secret:NAME:json-key:version-stage:version-id`` pick a key and a version of the secret."""
    parts = value_from.split(":")
    extra = [*parts[7:], "", "", ""][:3]
    return ":".join(parts[:7]), extra[1] or None, extra[2] or None


def _trusts_ecs_tasks(document: Any) -> bool:
    """Whether a trust policy lets ecs-tasks.amazonaws.com call sts:AssumeRole (conditions are not evaluated)."""
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document))
        except ValueError:
            return False
    if not isinstance(document, dict):
        return False
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = denied = False
    for statement in statements:
        if not isinstance(statement, dict) or not _names_assume_role(statement.get("Action")):
            continue
        if not _names_ecs_tasks(statement.get("Principal")):
            continue
        if statement.get("Effect") == "Deny":
            denied = True
        elif statement.get("Effect") == "Allow":
            allowed = True
    return allowed and not denied


def _names_assume_role(action: Any) -> bool:
    actions = [action] if isinstance(action, str) else action if isinstance(action, list) else []
    return any(str(a).lower() in ("sts:assumerole", "sts:*", "*") for a in actions)


def _names_ecs_tasks(principal: Any) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    services = principal.get("Service")
    names = [services] if isinstance(services, str) else services if isinstance(services, list) else []
    return ECS_TASKS in names


def _cpu_units(value: Any) -> int | None:
    """Task cpu as ECS registers it: CPU units (``"256"``), or vCPUs (``"1 vCPU"``, ``".25 vcpu"``)."""
    return _quantity(value, r"v?cpus?", 1024)


def _memory_mib(value: Any) -> int | None:
    """Task memory as ECS registers it: MiB (``"512"``), or GB (``"2 GB"``, ``"2GB"``)."""
    return _quantity(value, r"gb?", 1024)


def _quantity(value: Any, unit: str, per_unit: int) -> int | None:
    text = str(value).strip().lower()
    match = re.fullmatch(rf"(\d+(?:\.\d*)?|\.\d+)\s*({unit})?", text)
    if not match:
        return None
    try:
        number = Decimal(match.group(1)) * (per_unit if match.group(2) else 1)
    except InvalidOperation:
        return None
    return int(number) if number == int(number) else None


def _fargate_size_problem(cpu: int, memory: int, *, windows: bool) -> str | None:
    """Why Fargate has no task of ``cpu`` units and ``memory`` MiB; None when it has."""
    valid = sorted([256, *FARGATE_SIZES])
    if cpu not in valid:
        return f"Fargate has no task of {cpu} CPU units: set cpu to one of {', '.join(map(str, valid))}"
    if windows and cpu not in FARGATE_WINDOWS_CPU:
        return (
            f"Fargate runs Windows containers with 1024, 2048 or 4096 CPU units, not {cpu}: set cpu to one of them "
            "(and memory to match)"
        )
    if cpu == 256:
        if memory in FARGATE_256:
            return None
        choices = "512, 1024 or 2048"
    else:
        low, high, step = FARGATE_SIZES[cpu]
        if low <= memory <= high and (memory - low) % step == 0:
            return None
        choices = f"{low} to {high} in steps of {step}"
    return f"Fargate has no task of {cpu} CPU units with {memory} MiB: with cpu {cpu}, set memory to {choices} (MiB)"


def _containers(names: list[str]) -> str:
    """``container web's`` / ``containers web and worker's``."""
    if len(names) == 1:
        return f"container {names[0]}'s"
    return f"containers {', '.join(names[:-1])} and {names[-1]}'s"


def _of(where: Iterable[str]) -> str:
    """`` of web's DB_PASSWORD`` (and the others that read it)."""
    shown = list(dict.fromkeys(where))
    return f" of {', '.join(shown)}" if shown else ""


def _listed(ports: dict[int, str]) -> str:
    return ", ".join(str(p) for p in sorted(ports))


__all__ = ["Finding", "verify"]
