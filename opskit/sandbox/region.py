"""The sandbox's own models for its one region, and which AWS actions each of them answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.ecr.api import Images
from opskit.sandbox.ecs.services import Services
from opskit.sandbox.ecs.taskdefs import TaskDefinitions
from opskit.sandbox.elb import LoadBalancing
from opskit.sandbox.lambdas.runner import LambdaRunner
from opskit.sandbox.server.app import Forward
from opskit.sandbox.server.wire import ApiError, ApiRequest, Handler


class Region:
    """One account's region: its models, given only what they use (the clock, the registry and its host, the
    engine, the environment that points a Lambda function's own calls at the sandbox), and the actions each answers."""

    def __init__(
        self,
        *,
        name: str,
        account_id: str,
        clock: SandboxClock,
        registry: Any,
        registry_host: str,
        docker: Any,
        runner_id: str,
        lambda_env: Mapping[str, str],
    ) -> None:
        self.name = name
        self.account_id = account_id
        # Lambda functions (moto keeps them) run here, for the lifecycle hooks of deployments.
        self.lambdas = LambdaRunner(account_id=account_id, region=name, aws_env=lambda_env)
        self.taskdefs = TaskDefinitions(clock, self.account_id, self.name)
        self.images = Images(
            clock=clock,
            account_id=self.account_id,
            region=self.name,
            registry=registry,
            registry_host=registry_host,
        )
        self.load_balancing = LoadBalancing(self.account_id, self.name)
        runner = None
        if docker is not None:
            from opskit.sandbox.ecs.awslogs import CloudWatchLogs
            from opskit.sandbox.ecs.runner import ContainerRunner

            runner = ContainerRunner(
                docker,
                sandbox_id=runner_id,
                registry_auth=lambda: {"username": "AWS", "password": self.images.tokens.issue()[0]},
                logs=CloudWatchLogs(self.account_id, self.name, clock),
            )
        self.services = Services(
            clock=clock,
            account_id=self.account_id,
            region=self.name,
            taskdefs=self.taskdefs,
            digest_of=self.images.digest_of,
            runner=runner,
            cluster_arn=self._cluster_arn,
            load_balancing=self.load_balancing,
            lambdas=self.lambdas,
            alarms_in_alarm=self._alarms_in_alarm,
        )
        self.taskdefs.in_use = self.services.in_use
        self.registry_app = self.images.registry_app() if registry is not None else None
        self._ecs: dict[str, Handler] = {
            **self.taskdefs.handlers(),
            **self.services.handlers(),
            "TagResource": self._tag,
            "UntagResource": self._untag,
            "ListTagsForResource": self._list_tags,
        }
        self._ecr: dict[str, Handler] = self.images.handlers()
        self._elbv2: dict[str, Handler] = self.load_balancing.handlers()

    def handlers(self, service: str, region: str) -> dict[str, Handler]:
        if region != self.name:
            # Other regions' load balancers are moto's alone (no service of the sandbox uses them).
            return {} if service == "elbv2" else _WrongRegion(self.name, region)
        return {"ecs": self._ecs, "ecr": self._ecr, "elbv2": self._elbv2}.get(service, {})

    def tick(self) -> None:
        self.services.tick()
        self.taskdefs.reap()

    def close(self) -> None:
        self.lambdas.close()
        self.services.close()
        self.load_balancing.close()

    def _alarms_in_alarm(self, names: list[str]) -> list[str]:
        """Which of these CloudWatch alarms (moto keeps them; SetAlarmState moves them) are in ALARM now."""
        from moto.cloudwatch.models import cloudwatch_backends

        alarms = cloudwatch_backends[self.account_id][self.name].alarms
        return [name for name in names if name in alarms and alarms[name].state_value == "ALARM"]

    def _cluster_arn(self, name_or_arn: str) -> str | None:
        """The ARN of an existing (ACTIVE) cluster, from moto's model, which owns clusters."""
        from moto.ecs.models import ecs_backends

        backend = ecs_backends[self.account_id][self.name]
        name = name_or_arn.rsplit("/", 1)[-1] if name_or_arn else "default"
        cluster = backend.clusters.get(name)
        return None if cluster is None or getattr(cluster, "status", "ACTIVE") != "ACTIVE" else str(cluster.arn)

    # Tags: each model keeps its own resources' tags; moto keeps the rest (clusters ...).
    def _owner(self, arn: Any) -> Any:
        if isinstance(arn, str) and ":task-definition/" in arn:
            return self.taskdefs
        if isinstance(arn, str) and ":service/" in arn:
            return self.services
        raise Forward

    def _tag(self, request: ApiRequest) -> dict[str, Any]:
        self._owner(request.params.get("resourceArn")).tag(
            request.params["resourceArn"], request.params.get("tags", [])
        )
        return {}

    def _untag(self, request: ApiRequest) -> dict[str, Any]:
        arn = request.params.get("resourceArn")
        self._owner(arn).untag(arn, request.params.get("tagKeys", []))
        return {}

    def _list_tags(self, request: ApiRequest) -> dict[str, Any]:
        arn = request.params.get("resourceArn")
        return {"tags": self._owner(arn).tags_of(arn)}


class _WrongRegion(dict[str, Handler]):
    """Every action answers that the sandbox serves one region, and which."""

    def __init__(self, serves: str, asked: str) -> None:
        super().__init__()
        self.serves, self.asked = serves, asked

    def get(self, action: str, default: Any = None) -> Handler:
        def refuse(request: ApiRequest) -> dict[str, Any]:
            raise ApiError(
                "InvalidRegionException",
                f"This opskit sandbox serves region {self.serves}, not {self.asked}: "
                f"set AWS_DEFAULT_REGION={self.serves} or pass --region {self.serves}.",
            )

        return refuse
