"""Elastic Load Balancing as the sandbox's ECS services use it: checking a service's ``loadBalancers``, moving
traffic between target groups, and the targets its tasks become.

Users make load balancers, target groups, listeners and rules with plain ``elbv2`` calls, which moto keeps; the
sandbox reads and rewrites them in moto's model. What moto cannot show is a target's health: it calls every
registered target healthy. So the targets the sandbox registers (a deployment's tasks) live here, with the state
the scheduler gives them, and :meth:`LoadBalancing.handlers` answers ``DescribeTargetHealth`` for the target groups
that hold some; targets users register themselves stay moto's and are answered as moto sees them.

ECS moves traffic by rewriting the forward action of the production (and test) listener rule: an Application
Load Balancer's listener rule, or a Network Load Balancer's listener (its default action). :meth:`LoadBalancing.shift`
takes percentages of traffic and writes ELB weights (0-999): whole percentages as they are (90/10), finer ones in
tenths of a percent (99.9/0.1 is written 999/1), so ``describe_rules`` reads like the split ECS reports.

>>> lb = region.load_balancing                                                                   # doctest: +SKIP
>>> lb.check(service_params["loadBalancers"], strategy="BLUE_GREEN")                           # doctest: +SKIP
>>> lb.register(green_arn, "10.0.1.7", 8080); lb.set_health(green_arn, "10.0.1.7", "healthy")  # doctest: +SKIP
>>> lb.shift(service_params["loadBalancers"][0], production={blue_arn: 90, green_arn: 10})      # doctest: +SKIP
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opskit.sandbox.server.app import Forward
from opskit.sandbox.server.wire import ApiRequest, Handler, invalid_parameter

TRAFFIC_SHIFTING = ("BLUE_GREEN", "LINEAR", "CANARY")
MAX_WEIGHT = 999  # the highest weight ELB takes for a target group of a forward action
# ELB's target states, and the reason (and its description, ELB's words) a state shows when none is given.
STATES = ("initial", "healthy", "unhealthy", "unhealthy.draining", "unused", "draining", "unavailable")
REASONS = {
    "Elb.RegistrationInProgress": "Target registration is in progress",
    "Elb.InitialHealthChecking": "Initial health checks in progress",
    "Target.ResponseCodeMismatch": "Health checks failed with these codes: [500]",
    "Target.Timeout": "Request timed out",
    "Target.FailedHealthChecks": "Health checks failed",
    "Target.NotRegistered": "Target is not registered to the target group",
    "Target.NotInUse": "Target group is not configured to receive traffic from the load balancer",
    "Target.DeregistrationInProgress": "Target deregistration is in progress",
    "Target.InvalidState": "Target is in the stopped state",
    "Target.IpUnusable": "The target IP address is reserved for use by a load balancer",
    "Target.HealthCheckDisabled": "Health checks are disabled",
    "Elb.InternalError": "Health checks failed due to an internal error",
}
DEFAULT_REASONS = {
    "initial": "Elb.InitialHealthChecking",
    "unhealthy": "Target.FailedHealthChecks",
    "unhealthy.draining": "Target.DeregistrationInProgress",
    "unused": "Target.NotInUse",
    "draining": "Target.DeregistrationInProgress",
    "unavailable": "Target.HealthCheckDisabled",
}


class LoadBalancingError(Exception):
    """What ECS meets, after CreateService or UpdateService accepted a service, when the load balancer no longer
    lets it do its work (a rule or target group deleted, a rule that does not forward): the scheduler fails the
    deployment with this message as its reason."""


@dataclass
class _Target:
    port: int
    state: str
    reason: str | None


class LoadBalancing:
    """One account's Elastic Load Balancing in one region, as ECS sees and drives it."""

    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region
        self._lock = threading.Lock()
        self._targets: dict[str, dict[str, _Target]] = {}  # target group ARN -> target id -> the sandbox's target

    def handlers(self) -> dict[str, Handler]:
        """The ``elbv2`` actions the sandbox answers itself; moto answers every other one."""
        return {"DescribeTargetHealth": self._describe_target_health}

    def close(self) -> None:
        """Forget the targets, and the load balancers users made: they live as long as the sandbox, like its
        clusters (the next sandbox of this account starts without them)."""
        with self._lock:
            self._targets.clear()
        from moto.elbv2.models import elbv2_backends

        if self.account_id in elbv2_backends:
            elbv2_backends[self.account_id][self.region].reset()

    # -- CreateService / UpdateService ------------------------------------------------------------------------------
    def check(self, load_balancers: list[dict[str, Any]], *, strategy: str) -> None:
        """Refuse ``loadBalancers`` as ECS refuses them (InvalidParameterException) when CreateService or
        UpdateService is called; ``strategy`` is the deployment strategy (ROLLING, BLUE_GREEN, LINEAR, CANARY)."""
        if not isinstance(load_balancers, list):
            raise invalid_parameter("loadBalancers must be a list of load balancer objects.")
        for index, entry in enumerate(load_balancers):
            if not isinstance(entry, dict):
                raise invalid_parameter(f"loadBalancers[{index}] must be an object.")
            self._check_entry(entry, strategy)

    def _check_entry(self, entry: dict[str, Any], strategy: str) -> None:
        target_group = entry.get("targetGroupArn")
        if not target_group:
            if entry.get("loadBalancerName"):
                raise invalid_parameter(
                    "The opskit sandbox serves Application and Network Load Balancers only: pass targetGroupArn "
                    "instead of loadBalancerName (Classic Load Balancers are not modelled)."
                )
            raise invalid_parameter(
                "A load balancer needs targetGroupArn: pass the ARN of the target group the service's tasks join."
            )
        if not entry.get("containerName"):
            raise invalid_parameter(
                "Container Name can not be blank. Pass containerName: the container (as named in the task "
                "definition) that receives the load balancer's traffic."
            )
        if entry.get("containerPort") is None:
            raise invalid_parameter(
                "Container Port can not be blank. Pass containerPort: the port of the container's port mapping "
                "that receives the load balancer's traffic."
            )
        with _moto_lock:
            backend = self._backend()
            self._check_target_group(backend, target_group, "targetGroupArn")
            advanced = entry.get("advancedConfiguration")
            if advanced is None:
                if strategy in TRAFFIC_SHIFTING:
                    raise invalid_parameter(
                        f"advancedConfiguration is required in loadBalancers for the {strategy} deployment "
                        "strategy: pass alternateTargetGroupArn, productionListenerRule and roleArn (testListenerRule "
                        "is optional), so that Amazon ECS can shift traffic between the two target groups."
                    )
                return
            if not isinstance(advanced, dict):
                raise invalid_parameter("advancedConfiguration must be an object.")
            self._check_advanced(backend, target_group, advanced)

    def _check_advanced(self, backend: Any, target_group: str, advanced: dict[str, Any]) -> None:
        alternate = advanced.get("alternateTargetGroupArn")
        if not alternate:
            raise invalid_parameter(
                "alternateTargetGroupArn is required in advancedConfiguration: pass the ARN of a second target "
                "group, which the new service revision's tasks join during a deployment."
            )
        if alternate == target_group:
            raise invalid_parameter(
                f"alternateTargetGroupArn must differ from targetGroupArn ({target_group}): a deployment moves "
                "traffic from one target group to the other, so pass a second target group."
            )
        self._check_target_group(backend, alternate, "alternateTargetGroupArn")
        production = advanced.get("productionListenerRule")
        if not production:
            raise invalid_parameter(
                "productionListenerRule is required in advancedConfiguration: pass the ARN of the listener rule "
                "(Application Load Balancer) or listener (Network Load Balancer) that routes production traffic."
            )
        self._check_rule(backend, production, "productionListenerRule")
        test = advanced.get("testListenerRule")
        if test:
            if test == production:
                raise invalid_parameter(
                    f"The following rules cannot be used as both production and test listener rules: {test}. "
                    "Create a separate listener rule for test traffic."
                )
            self._check_rule(backend, test, "testListenerRule")
        if not advanced.get("roleArn"):
            raise invalid_parameter(
                "roleArn is required in advancedConfiguration: pass the ARN of the IAM role that lets Amazon ECS "
                "call Elastic Load Balancing for you (the AmazonECSInfrastructureRolePolicyForLoadBalancers policy)."
            )

    def _check_target_group(self, backend: Any, arn: Any, field: str) -> None:
        group = backend.target_groups.get(arn) if isinstance(arn, str) else None
        if group is None:
            raise invalid_parameter(
                f"Unable to assume role and validate the specified {field}. Please verify that the ECS service role "
                f"being passed has the proper permissions. (The target group {arn} does not exist in "
                f"{self.region}: create it with elbv2 create-target-group, or pass an ARN that "
                "describe-target-groups shows.)"
            )
        if not _has_load_balancer(backend, arn):
            raise invalid_parameter(
                f"The target group with {field} {arn} does not have an associated load balancer. Forward to it "
                "from a listener or listener rule of the load balancer first."
            )

    def _check_rule(self, backend: Any, arn: Any, field: str) -> None:
        """An ALB's listener rule or an NLB's listener; either of the other kind is refused as ECS refuses it."""
        wrong_kind = invalid_parameter(
            f"{field} has an invalid ARN format. Must be RuleArn for ALB or ListenerArn for NLB. Got: {arn}"
        )
        if not isinstance(arn, str):
            raise wrong_kind
        found = _find_rule(backend, arn)
        if found is not None:
            if _balancer_type(backend, found[0]) == "network":
                raise wrong_kind
            return
        listener = _find_listener(backend, arn)
        if listener is not None:
            if _balancer_type(backend, listener) != "network":
                raise wrong_kind
            return
        if ":listener/app/" in arn:  # an ALB's listener: the wrong kind, whether it exists or not
            raise wrong_kind
        raise invalid_parameter(
            f"The {field} {arn} does not exist in {self.region}: pass the ARN of a listener rule that describe-rules "
            "shows (for a Network Load Balancer, of a listener that describe-listeners shows)."
        )

    # -- deployments ------------------------------------------------------------------------------------------------
    def shift(
        self,
        load_balancer: Mapping[str, Any],
        *,
        production: Mapping[str, float],
        test: Mapping[str, float] | None = None,
    ) -> None:
        """Point the production listener rule's forward action (and, when the service has a test listener rule and
        ``test`` is given, the test rule's) at these target groups, ``{target group ARN: percent of traffic}``
        summing to 100. ``load_balancer`` is one of the service's ``loadBalancers`` that :meth:`check` accepted."""
        advanced = load_balancer.get("advancedConfiguration") or {}
        production_rule = advanced.get("productionListenerRule")
        if not production_rule:
            raise ValueError(
                "this load balancer has no productionListenerRule: check() it with a traffic-shifting strategy"
            )
        rewrites = [(production_rule, elb_weights(production))]
        test_rule = advanced.get("testListenerRule")
        if test is not None and test_rule:
            rewrites.append((test_rule, elb_weights(test)))
        with _moto_lock:
            backend = self._backend()
            for rule_arn, weights in rewrites:
                self._rewrite(backend, rule_arn, weights)

    def _rewrite(self, backend: Any, arn: str, weights: dict[str, int]) -> None:
        missing = [group for group in weights if group not in backend.target_groups]
        if missing:
            raise LoadBalancingError(f"The target group {missing[0]} does not exist: ECS cannot shift traffic to it.")
        found = _find_rule(backend, arn)
        if found is not None:
            listener, rule = found
            actions = rule.actions
        else:
            listener = _find_listener(backend, arn)
            if listener is None:
                raise LoadBalancingError(f"The listener rule {arn} does not exist: ECS cannot shift traffic.")
            rule, actions = None, listener.default_actions
        new_actions = [_weighted(action.data, weights, arn) for action in actions]
        if rule is not None and not rule.is_default:
            backend.modify_rule(arn, [], new_actions)
        else:  # a listener's default action: change it on the listener, which describe-rules shows too
            backend.modify_listener(listener.arn, certificates=[], actions=new_actions)

    def register(self, target_group_arn: str, target_id: str, port: int) -> None:
        """Register a task (its IP address) in a target group: it shows as ``initial`` until :meth:`set_health`."""
        with _moto_lock:
            if target_group_arn not in self._backend().target_groups:
                raise LoadBalancingError(
                    f"Unable to register targets in {target_group_arn}: One or more target groups not found."
                )
        with self._lock:
            targets = self._targets.setdefault(target_group_arn, {})
            known = targets.get(target_id)
            if known is None or known.port != port or known.state in ("draining", "unhealthy.draining"):
                targets[target_id] = _Target(port, "initial", "Elb.RegistrationInProgress")

    def deregister(self, target_group_arn: str, target_id: str) -> None:
        """Take a target out of the target group (gone from DescribeTargetHealth); one never registered is fine, as
        ECS deregisters every task it stops."""
        with self._lock:
            self._targets.get(target_group_arn, {}).pop(target_id, None)

    def set_health(self, target_group_arn: str, target_id: str, state: str, reason: str | None = None) -> None:
        """Give a registered target ELB's state (``initial``, ``healthy``, ``unhealthy``, ``draining``, ``unused``
        ...) and reason (``Target.FailedHealthChecks`` ...; by default the usual one for that state)."""
        if state not in STATES:
            raise ValueError(f"unknown target state {state!r}: one of {', '.join(STATES)}")
        if reason is not None and reason not in REASONS:
            raise ValueError(f"unknown target health reason {reason!r}: one of {', '.join(REASONS)}")
        with self._lock:
            target = self._targets.get(target_group_arn, {}).get(target_id)
            if target is None:
                raise ValueError(f"{target_id} is not registered in {target_group_arn}: register() it first")
            target.state = state
            target.reason = None if state == "healthy" else reason or DEFAULT_REASONS[state]

    # -- DescribeTargetHealth ----------------------------------------------------------------------------------------
    def _describe_target_health(self, request: ApiRequest) -> dict[str, Any]:
        arn = request.params.get("TargetGroupArn")
        with self._lock:
            if not isinstance(arn, str) or arn not in self._targets:
                raise Forward  # the sandbox registered nothing there: moto answers (and refuses what it must)
            ours = {target_id: (str(t.port), t.state, t.reason) for target_id, t in self._targets[arn].items()}
        with _moto_lock:
            backend = self._backend()
            group = backend.target_groups.get(arn)
            if group is None:
                raise Forward  # deleted since: moto answers TargetGroupNotFound
            check_port = getattr(group, "health_check_port", None)
            theirs = {
                str(status.instance_id): (str(status.port), status.status, status.reason, status.description)
                for status in backend.describe_target_health(arn, [])
            }
        described = {
            target_id: _description(target_id, port, check_port, state, reason)
            for target_id, (port, state, reason) in ours.items()
        }
        for target_id, (port, state, reason, description) in theirs.items():
            if target_id not in described:
                described[target_id] = _description(target_id, port, check_port, state, reason, description)
        asked = request.params.get("Targets")
        if not asked:
            return {"TargetHealthDescriptions": list(described.values())}
        answer = []
        for wanted in asked:
            target_id = str(wanted.get("Id", ""))
            port = wanted.get("Port") or str(getattr(group, "port", ""))
            answer.append(
                described.get(target_id) or _description(target_id, port, check_port, "unused", "Target.NotRegistered")
            )
        return {"TargetHealthDescriptions": answer}

    def _backend(self) -> Any:
        from moto.elbv2.models import elbv2_backends

        return elbv2_backends[self.account_id][self.region]


# moto's model is not thread-safe: the scheduler's rewrites (the engine's thread) and the reads of requests (the HTTP
# server's) take this lock; moto's own answers to users do not, and a dict read while moto writes it is still safe.
_moto_lock = threading.RLock()


def elb_weights(percentages: Mapping[str, float]) -> dict[str, int]:
    """ELB weights for a split of traffic in percent: whole percentages as they are, finer ones in tenths.

    >>> elb_weights({"blue": 90, "green": 10.0})
    {'blue': 90, 'green': 10}
    >>> elb_weights({"blue": 99.9, "green": 0.1})
    {'blue': 999, 'green': 1}
    """
    if not percentages:
        raise ValueError("a traffic split needs at least one target group")
    for arn, percent in percentages.items():
        if not (isinstance(percent, (int, float)) and math.isfinite(percent) and 0 <= percent <= 100):
            raise ValueError(f"{arn}: {percent!r} is not a percentage from 0 to 100")
    if abs(sum(percentages.values()) - 100) > 0.01:
        raise ValueError(f"a traffic split must add up to 100 percent, not {sum(percentages.values())}")
    whole = {arn: round(percent) for arn, percent in percentages.items()}
    if all(abs(percent - whole[arn]) < 1e-9 for arn, percent in percentages.items()):
        return whole
    tenths = {arn: round(percent * 10) for arn, percent in percentages.items()}
    return tenths if max(tenths.values()) <= MAX_WEIGHT else whole  # finer than 0.1% of 100: as whole percentages


def _weighted(action: Mapping[str, Any], weights: Mapping[str, int], rule_arn: str) -> dict[str, Any]:
    """A forward action to these weights (keeping its stickiness); any other action type ECS cannot shift."""
    if action.get("Type") != "forward":
        raise LoadBalancingError(
            f"The listener rule {rule_arn} has a {action.get('Type')} action: Amazon ECS shifts traffic only on "
            "listener rules whose actions all forward to target groups."
        )
    config: dict[str, Any] = {
        "TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights.items()]
    }
    stickiness = (action.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig")
    if stickiness:
        config["TargetGroupStickinessConfig"] = dict(stickiness)
    return {"Type": "forward", "ForwardConfig": config}


def _description(
    target_id: str,
    port: str,
    check_port: str | None,
    state: str,
    reason: str | None,
    description: str | None = None,
) -> dict[str, Any]:
    """One TargetHealthDescription, as ELB writes it (the health check port is the target's own for traffic-port)."""
    health: dict[str, Any] = {"State": state}
    if reason:
        health["Reason"] = reason
        health["Description"] = description or REASONS.get(reason)
    return {
        "Target": {"Id": target_id, "Port": port},
        "HealthCheckPort": port if check_port in (None, "traffic-port") else check_port,
        "TargetHealth": health,
    }


def _has_load_balancer(backend: Any, target_group_arn: str) -> bool:
    """Whether a listener or rule of some load balancer forwards to the target group (moto records the balancers
    on the group when a listener or rule is made; a rule modified to forward there later is found by looking)."""
    group = backend.target_groups[target_group_arn]
    if getattr(group, "load_balancer_arns", None):
        return True
    for balancer in backend.load_balancers.values():
        for listener in balancer.listeners.values():
            for rule in listener.rules.values():
                if any(target_group_arn in _forwards_to(action.data) for action in rule.actions):
                    return True
    return False


def _forwards_to(action: Mapping[str, Any]) -> set[str]:
    if action.get("Type") != "forward":
        return set()
    arns = {action["TargetGroupArn"]} if action.get("TargetGroupArn") else set()
    for group in (action.get("ForwardConfig") or {}).get("TargetGroups") or []:
        arns.add(group.get("TargetGroupArn"))
    return arns


def _find_rule(backend: Any, arn: str) -> tuple[Any, Any] | None:
    """(listener, rule) of a listener rule ARN, None when no listener has it."""
    for balancer in backend.load_balancers.values():
        for listener in balancer.listeners.values():
            for rule in listener.rules.values():
                if rule.arn == arn:
                    return listener, rule
    return None


def _find_listener(backend: Any, arn: str) -> Any:
    for balancer in backend.load_balancers.values():
        listener = balancer.listeners.get(arn)
        if listener is not None:
            return listener
    return None


def _balancer_type(backend: Any, listener: Any) -> str:
    """ "application" or "network", from the load balancer (moto's NLB listener ARNs read listener/app/, not
    listener/net/ as AWS's do, so the ARN cannot tell)."""
    balancer = backend.load_balancers.get(listener.load_balancer_arn)
    return str(getattr(balancer, "type", "application"))
