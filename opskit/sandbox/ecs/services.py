"""ECS services in the sandbox: the model's public face and the service APIs.

moto keeps clusters; the sandbox keeps what moto gets wrong (notes: moto-fidelity): services whose deployments
roll out over (scaled) sandbox time, tasks that are real records, the circuit breaker and its rollback,
service events in ECS's words, AWS's paging and errors. The simulation is in :mod:`opskit.sandbox.ecs.scheduler`
and :mod:`opskit.sandbox.ecs.task_lifecycle`; the task APIs in :mod:`opskit.sandbox.ecs.tasks_api`, the
service-deployment APIs in :mod:`opskit.sandbox.ecs.deployments_api`.

>>> ecs = sandbox.client("ecs")                                                          # doctest: +SKIP
>>> ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web:1", desiredCount=2)  # doctest: +SKIP
>>> sandbox.clock.advance(120)                                                           # doctest: +SKIP
>>> web = ecs.describe_services(cluster="prod", services=["web"])["services"][0]        # doctest: +SKIP
>>> web["deployments"][0]["rolloutState"]                                               # doctest: +SKIP
'COMPLETED'"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.ecs.deployments_api import ServiceDeploymentApi
from opskit.sandbox.ecs.records import ACTIVE, DRAINING, INACTIVE, Service
from opskit.sandbox.ecs.runner import ContainerRunner
from opskit.sandbox.ecs.scheduler import Scheduler
from opskit.sandbox.ecs.taskdefs import ACTIVE as REVISION_ACTIVE
from opskit.sandbox.ecs.taskdefs import Revision, TaskDefinitions
from opskit.sandbox.ecs.tasks_api import TaskApi
from opskit.sandbox.ecs.traffic import SHIFTING
from opskit.sandbox.elb import LoadBalancing
from opskit.sandbox.lambdas.hooks import HOOK_STAGES
from opskit.sandbox.lambdas.runner import LambdaRunner
from opskit.sandbox.server.paging import paginate
from opskit.sandbox.server.wire import ApiError, ApiRequest, Handler, client_error, invalid_parameter

_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,255}$")
DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}
# Settings that, when UpdateService changes them, start a new deployment (as on ECS).
_REDEPLOYING = ("networkConfiguration", "platformVersion", "capacityProviderStrategy", "volumeConfigurations")
_ECHOED = (
    "loadBalancers",
    "serviceRegistries",
    "placementConstraints",
    "placementStrategy",
    "networkConfiguration",
    "healthCheckGracePeriodSeconds",
    "enableECSManagedTags",
    "propagateTags",
    "enableExecuteCommand",
    "availabilityZoneRebalancing",
    "platformVersion",
    "capacityProviderStrategy",
    "volumeConfigurations",
)


def cluster_not_found() -> ApiError:
    return ApiError("ClusterNotFoundException", "Cluster not found.")


def service_not_found() -> ApiError:
    return ApiError("ServiceNotFoundException", "Service not found.")


class Services:
    """Services, their deployments and tasks for one account and region."""

    def __init__(
        self,
        *,
        clock: SandboxClock,
        account_id: str,
        region: str,
        taskdefs: TaskDefinitions,
        digest_of: Callable[[str], str | None],
        runner: ContainerRunner | None,
        cluster_arn: Callable[[str], str | None],
        load_balancing: LoadBalancing | None = None,
        lambdas: LambdaRunner | None = None,
        alarms_in_alarm: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.clock = clock
        self.account_id = account_id
        self.region = region
        self.taskdefs = taskdefs
        self.cluster_arn = cluster_arn
        self.load_balancing = load_balancing
        self.scheduler = Scheduler(
            clock=clock,
            region=region,
            account_id=account_id,
            digest_of=digest_of,
            runner=runner,
            load_balancing=load_balancing,
            lambdas=lambdas,
            alarms_in_alarm=alarms_in_alarm,
        )
        self.lock = self.scheduler.lock
        self.deployments_api = ServiceDeploymentApi(self.scheduler, self._cluster, self._find)
        self.tasks_api = TaskApi(self.scheduler, self._cluster, self._find)

    @property
    def runner(self) -> ContainerRunner | None:
        """Where tasks' containers run; ``None`` simulates them (the demo's history is never run)."""
        return self.scheduler.runner

    @runner.setter
    def runner(self, value: ContainerRunner | None) -> None:
        with self.lock:
            self.scheduler.runner = value

    @property
    def digest_of(self) -> Callable[[str], str | None]:
        """The digest an image reference names now, or None if it cannot be pulled (the ECR model answers)."""
        return self.scheduler.digest_of

    # -- what the region asks ---------------------------------------------------------------------------------
    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateService": self._create_service,
            "UpdateService": self._update_service,
            "DeleteService": self._delete_service,
            "DescribeServices": self._describe_services,
            "ListServices": self._list_services,
            **self.tasks_api.handlers(),
            **self.deployments_api.handlers(),
        }

    def tick(self) -> None:
        """Play every event due by the clock's now (called every 50 ms and after each clock move)."""
        with self.lock:
            if not self.scheduler.closed:
                self.scheduler.run_due()

    def in_use(self, task_definition_arn: str) -> bool:
        with self.lock:
            return self.scheduler.in_use(task_definition_arn)

    def close(self) -> None:
        """Stop and remove every container this sandbox started."""
        with self.lock:
            self.scheduler.closed = True
            runner = self.scheduler.runner
        if runner is not None:  # outside the lock: the runner's threads report under it
            runner.close()

    # -- tags on service ARNs ------------------------------------------------------------------------------------
    def tags_of(self, arn: str) -> list[dict[str, str]]:
        with self.lock:
            return list(self._by_arn(arn).tags)

    def tag(self, arn: str, tags: list[dict[str, str]]) -> None:
        with self.lock:
            service = self._by_arn(arn)
            merged = {t["key"]: t["value"] for t in service.tags}
            merged.update({t["key"]: t["value"] for t in tags})
            service.tags = [{"key": k, "value": v} for k, v in merged.items()]

    def untag(self, arn: str, keys: list[str]) -> None:
        with self.lock:
            service = self._by_arn(arn)
            service.tags = [t for t in service.tags if t["key"] not in set(keys)]

    def _by_arn(self, arn: str) -> Service:
        for service in self.scheduler.services.values():
            if service.arn == arn and service.status != INACTIVE:
                return service
        raise invalid_parameter("The specified resource is not found.")

    # -- services ------------------------------------------------------------------------------------------------
    def _create_service(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        name = params.get("serviceName")
        if not isinstance(name, str) or not _SERVICE_NAME.match(name):
            raise invalid_parameter("serviceName must be 1-255 characters: letters, numbers, hyphens and underscores.")
        if (params.get("schedulingStrategy") or "REPLICA") != "REPLICA":
            raise invalid_parameter("The opskit sandbox runs REPLICA services only.")
        if ((params.get("deploymentController") or {}).get("type") or "ECS") != "ECS":
            raise invalid_parameter("The opskit sandbox runs the ECS (rolling update) deployment controller only.")
        revision = self._revision(params.get("taskDefinition"))
        desired = _count(params.get("desiredCount", 0), "desiredCount")
        config = _deployment_configuration(params.get("deploymentConfiguration"), DEFAULT_DEPLOYMENT_CONFIGURATION)
        self._check_load_balancers(params.get("loadBalancers"), config)
        launch_type = params.get("launchType") or "EC2"
        if launch_type not in ("EC2", "FARGATE", "EXTERNAL"):
            raise invalid_parameter("launchType must be one of EC2, FARGATE, EXTERNAL.")
        with self.lock:
            existing = self.scheduler.services.get((cluster_arn, name))
            if existing is not None and existing.status == ACTIVE:
                raise invalid_parameter("Creation of service was not idempotent.")
            if existing is not None and existing.status == DRAINING:
                raise invalid_parameter("Unable to Start a service that is still Draining.")
            at = self.clock.timestamp()
            cluster_name = cluster_arn.rsplit("/", 1)[-1]
            service = Service(
                name=name,
                arn=f"arn:aws:ecs:{self.region}:{self.account_id}:service/{cluster_name}/{name}",
                cluster_arn=cluster_arn,
                desired_count=desired,
                deployment_configuration=config,
                launch_type=launch_type,
                created_at=self.clock.now(),
                created_by=f"arn:aws:iam::{self.account_id}:root",
                params={k: params[k] for k in _ECHOED if k in params} | {"taskDefinition": revision.arn},
                tags=list(params.get("tags") or []),
            )
            if params.get("role"):
                service.params["roleArn"] = params["role"]
            self.scheduler.services[(cluster_arn, name)] = service
            self.scheduler.start_deployment(service, revision, at)
            return {"service": service.describe()}

    def _update_service(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        revision = self._revision(params["taskDefinition"]) if params.get("taskDefinition") else None
        desired = _count(params["desiredCount"], "desiredCount") if "desiredCount" in params else None
        with self.lock:
            service = self._find(cluster_arn, params.get("service"))
            if service is None:
                raise service_not_found()
            if service.status != ACTIVE:
                raise ApiError("ServiceNotActiveException", "Service was not ACTIVE.")
            config = service.deployment_configuration
            if params.get("deploymentConfiguration") is not None:
                config = _deployment_configuration(params["deploymentConfiguration"], service.deployment_configuration)
            if "loadBalancers" in params or params.get("deploymentConfiguration") is not None:
                self._check_load_balancers(params.get("loadBalancers", service.params.get("loadBalancers")), config)
            service.deployment_configuration = config
            changed = [k for k in _REDEPLOYING if k in params and params[k] != service.params.get(k)]
            service.params.update({k: params[k] for k in _ECHOED if k in params})
            at = self.clock.timestamp()
            if desired is not None and desired != service.desired_count:
                self.scheduler.set_desired_count(service, desired, at)
            primary = service.primary
            new_revision = revision is not None and revision.arn != primary.revision.arn
            if new_revision or changed or params.get("forceNewDeployment"):
                self.scheduler.start_deployment(service, revision or primary.revision, at)
            return {"service": service.describe()}

    def _delete_service(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        with self.lock:
            service = self._find(cluster_arn, params.get("service"))
            if service is None or service.status == INACTIVE:
                raise service_not_found()
            if service.status == DRAINING:
                raise ApiError("ServiceNotActiveException", "Service was not ACTIVE.")
            if service.desired_count > 0 and not params.get("force"):
                raise invalid_parameter("The service cannot be stopped while it is scaled above 0.")
            self.scheduler.delete_service(service, self.clock.timestamp())
            return {"service": service.describe()}

    def _describe_services(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        names = params.get("services")
        if not isinstance(names, list) or not names or len(names) > 10:
            raise invalid_parameter("services must list between 1 and 10 services.")
        include_tags = "TAGS" in (params.get("include") or [])
        found, failures = [], []
        with self.lock:
            for reference in names:
                service = self._find(cluster_arn, reference)
                if service is None:
                    failures.append({"arn": self._service_arn(cluster_arn, reference), "reason": "MISSING"})
                else:
                    found.append(service.describe(include_tags))
        return {"services": found, "failures": failures}

    def _list_services(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        cluster_arn = self._cluster(params.get("cluster"))
        launch_type = params.get("launchType")
        strategy = params.get("schedulingStrategy")
        with self.lock:
            arns = sorted(
                s.arn
                for (cluster, _), s in self.scheduler.services.items()
                if cluster == cluster_arn
                and s.status != INACTIVE
                and (not launch_type or s.launch_type == launch_type)
                and (not strategy or strategy == "REPLICA")
            )
        page, token = paginate(
            arns,
            key=lambda arn: arn,
            max_results=params.get("maxResults"),
            next_token=params.get("nextToken"),
            default=10,
            limit=100,
            query=f"list-services:{cluster_arn}:{launch_type}:{strategy}",
        )
        return {"serviceArns": page, **({"nextToken": token} if token else {})}

    def _check_load_balancers(self, load_balancers: Any, config: dict[str, Any]) -> None:
        strategy = config.get("strategy", "ROLLING")
        if strategy in SHIFTING and not load_balancers:
            raise invalid_parameter(
                f"A {strategy} deployment shifts traffic through a load balancer: give loadBalancers with an "
                "advancedConfiguration (alternate target group, production listener rule, role)."
            )
        if load_balancers and self.load_balancing is not None:
            if not isinstance(load_balancers, list):
                raise invalid_parameter("loadBalancers must be a list.")
            self.load_balancing.check(load_balancers, strategy=strategy)

    # -- lookups -------------------------------------------------------------------------------------------------
    def _cluster(self, reference: Any) -> str:
        if reference is not None and not isinstance(reference, str):
            raise invalid_parameter("cluster must be a cluster name or ARN.")
        arn = self.cluster_arn(reference or "default")
        if arn is None:
            raise cluster_not_found()
        return arn

    def _find(self, cluster_arn: str, reference: Any) -> Service | None:
        if not isinstance(reference, str) or not reference:
            raise invalid_parameter("service must be a service name or ARN.")
        return self.scheduler.services.get((cluster_arn, reference.rsplit("/", 1)[-1]))

    def _service_arn(self, cluster_arn: str, reference: Any) -> str:
        if isinstance(reference, str) and reference.startswith("arn:"):
            return reference
        return f"arn:aws:ecs:{self.region}:{self.account_id}:service/{cluster_arn.rsplit('/', 1)[-1]}/{reference}"

    def _revision(self, reference: Any) -> Revision:
        """Resolve before taking the model's lock: the task-definition model calls :meth:`in_use` under its own."""
        revision = self.taskdefs.resolve(reference)
        if revision.status != REVISION_ACTIVE:
            raise client_error("TaskDefinition is inactive")
        return revision


THRESHOLD_TYPES = ("COUNT", "BOUNDED_PERCENT", "UNBOUNDED_PERCENT")
STRATEGIES = ("ROLLING", *SHIFTING)
HOOK_ACTIONS = ("ROLLBACK", "CONTINUE")


def _check_strategy(config: dict[str, Any]) -> None:
    """The strategy and what goes with it, as ECS checks them (ranges and defaults from ECS's API reference)."""
    strategy = config.get("strategy", "ROLLING")
    if strategy not in STRATEGIES:
        raise invalid_parameter(f"deploymentConfiguration.strategy must be one of {', '.join(STRATEGIES)}.")
    if strategy == "BLUE_GREEN" and "bakeTimeInMinutes" not in config:
        raise invalid_parameter("deploymentConfiguration.bakeTimeInMinutes is required for a BLUE_GREEN deployment.")
    _minutes(config, "bakeTimeInMinutes", "deploymentConfiguration")
    for key, wanted in (("linearConfiguration", "LINEAR"), ("canaryConfiguration", "CANARY")):
        if key in config and strategy != wanted:
            raise invalid_parameter(f"deploymentConfiguration.{key} applies to the {wanted} strategy only.")
    linear = config.get("linearConfiguration") or {}
    _percent(linear, "stepPercent", 3.0, "linearConfiguration")
    _minutes(linear, "stepBakeTimeInMinutes", "linearConfiguration")
    canary = config.get("canaryConfiguration") or {}
    _percent(canary, "canaryPercent", 0.1, "canaryConfiguration")
    _minutes(canary, "canaryBakeTimeInMinutes", "canaryConfiguration")
    _check_early_success(config, strategy)
    hooks = config.get("lifecycleHooks") or []
    if not isinstance(hooks, list):
        raise invalid_parameter("deploymentConfiguration.lifecycleHooks must be a list of hooks.")
    for hook in hooks:
        _check_hook(hook)
    alarms = config.get("alarms")
    if alarms is not None and (
        not isinstance(alarms, dict)
        or not all(isinstance(alarms.get(k), bool) for k in ("enable", "rollback"))
        or not isinstance(alarms.get("alarmNames"), list)
        or not all(isinstance(n, str) and n for n in alarms["alarmNames"])
    ):
        raise invalid_parameter("deploymentConfiguration.alarms needs alarmNames, enable and rollback.")


def _check_early_success(config: dict[str, Any], strategy: str) -> None:
    """earlySuccessCriteria as ECS's API reference states it: rolling deployments only; when enabled, healthyPercent
    (a whole percent from minimumHealthyPercent to 100) and sourceServiceRevisionCleanup are required."""
    criteria = config.get("earlySuccessCriteria")
    if criteria is None:
        return
    where = "deploymentConfiguration.earlySuccessCriteria"
    if not isinstance(criteria, dict) or not isinstance(criteria.get("enable"), bool):
        raise invalid_parameter(f"{where} needs enable, true or false.")
    if not criteria["enable"]:
        return
    if strategy != "ROLLING":
        raise invalid_parameter(f"{where} applies to the ROLLING strategy only.")
    percent, low = criteria.get("healthyPercent"), config.get("minimumHealthyPercent", 100)
    low = low if isinstance(low, int) and 0 <= low <= 100 else 0  # a bad one is refused on its own after this
    if not isinstance(percent, int) or isinstance(percent, bool) or not low <= percent <= 100:
        raise invalid_parameter(
            f"{where}.healthyPercent must be a whole percent from minimumHealthyPercent ({low}) to 100."
        )
    if criteria.get("sourceServiceRevisionCleanup") not in ("BLOCKING", "DEFERRED"):
        raise invalid_parameter(f"{where}.sourceServiceRevisionCleanup must be BLOCKING or DEFERRED.")


def _check_hook(hook: Any) -> None:
    where = "deploymentConfiguration.lifecycleHooks"
    # A hook without a targetType is a Lambda function's (the only kind before PAUSE hooks came).
    if not isinstance(hook, dict) or hook.get("targetType", "AWS_LAMBDA") not in ("AWS_LAMBDA", "PAUSE"):
        raise invalid_parameter(f"{where}[].targetType must be AWS_LAMBDA or PAUSE.")
    if hook.get("targetType", "AWS_LAMBDA") == "AWS_LAMBDA" and not (hook.get("hookTargetArn") and hook.get("roleArn")):
        raise invalid_parameter(f"{where}[]: an AWS_LAMBDA hook needs hookTargetArn (the function) and roleArn.")
    stages = hook.get("lifecycleStages")
    if not isinstance(stages, list) or not stages or any(stage not in HOOK_STAGES for stage in stages):
        raise invalid_parameter(f"{where}[].lifecycleStages must list stages among {', '.join(HOOK_STAGES)}.")
    timeout = hook.get("timeoutConfiguration")
    if timeout is not None:
        if not isinstance(timeout, dict) or timeout.get("action", "ROLLBACK") not in HOOK_ACTIONS:
            raise invalid_parameter(f"{where}[].timeoutConfiguration.action must be ROLLBACK or CONTINUE.")
        minutes = timeout.get("timeoutInMinutes", 1)
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 1440:
            raise invalid_parameter(f"{where}[].timeoutConfiguration.timeoutInMinutes must be 1 to 1440.")


def _minutes(config: dict[str, Any], key: str, where: str) -> None:
    value = config.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1440:
        raise invalid_parameter(f"{where}.{key} must be a whole number of minutes, 0 to 1440.")


def _percent(config: dict[str, Any], key: str, low: float, where: str) -> None:
    value = config.get(key, 100.0)
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not low <= value <= 100.0
        or abs(value * 10 - round(value * 10)) > 1e-6
    ):
        raise invalid_parameter(f"{where}.{key} must be a multiple of 0.1 from {low} to 100.0.")


def _circuit_breaker(value: Any) -> dict[str, Any]:
    """``deploymentCircuitBreaker`` as ECS takes it: enable and rollback, and optionally resetOnHealthyTask and a
    thresholdConfiguration (what ECS counts against it: :func:`~opskit.sandbox.ecs.records.breaker_threshold`)."""
    if not isinstance(value, dict) or not all(isinstance(value.get(k), bool) for k in ("enable", "rollback")):
        raise invalid_parameter("deploymentCircuitBreaker needs enable and rollback, both true or false.")
    breaker: dict[str, Any] = {"enable": value["enable"], "rollback": value["rollback"]}
    if "resetOnHealthyTask" in value:
        if not isinstance(value["resetOnHealthyTask"], bool):
            raise invalid_parameter("deploymentCircuitBreaker.resetOnHealthyTask must be true or false.")
        breaker["resetOnHealthyTask"] = value["resetOnHealthyTask"]
    if "thresholdConfiguration" in value:
        threshold = value["thresholdConfiguration"]
        kind = threshold.get("type", "BOUNDED_PERCENT") if isinstance(threshold, dict) else None
        number = threshold.get("value", 50) if isinstance(threshold, dict) else None
        if kind not in THRESHOLD_TYPES:
            raise invalid_parameter(
                f"deploymentCircuitBreaker.thresholdConfiguration.type must be one of {', '.join(THRESHOLD_TYPES)}."
            )
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise invalid_parameter(
                "deploymentCircuitBreaker.thresholdConfiguration.value must be a whole number, 1 or more."
            )
        breaker["thresholdConfiguration"] = {"type": kind, "value": number}
    return breaker


def _count(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid_parameter(f"{name} must be a whole number, 0 or more.")
    return value


def _deployment_configuration(given: Any, base: dict[str, Any]) -> dict[str, Any]:
    """Merge ``given`` over ``base`` and check it as ECS does; unknown keys are kept and returned verbatim."""
    config = {**base, "deploymentCircuitBreaker": dict(base.get("deploymentCircuitBreaker") or {})}
    if given is None:
        return config
    if not isinstance(given, dict):
        raise invalid_parameter("deploymentConfiguration must be an object.")
    for key, value in given.items():
        if key == "deploymentCircuitBreaker":
            config[key] = _circuit_breaker(value)
        else:
            config[key] = value
    _check_strategy(config)
    low, high = config.get("minimumHealthyPercent"), config.get("maximumPercent")
    if not isinstance(low, int) or isinstance(low, bool) or not 0 <= low <= 100:
        raise invalid_parameter("deploymentConfiguration.minimumHealthyPercent must be between 0 and 100.")
    if not isinstance(high, int) or isinstance(high, bool) or not 100 <= high <= 200 or high < low:
        raise invalid_parameter("deploymentConfiguration.maximumPercent must be between 100 and 200.")
    return config


__all__ = ["Services"]
