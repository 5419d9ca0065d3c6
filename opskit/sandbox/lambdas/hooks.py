"""ECS lifecycle hooks of targetType AWS_LAMBDA: the event ECS sends the function, and what its answer means.

From AWS's ECS developer guide ("Lambda hooks for Amazon ECS service deployments"): the function must return a JSON
object with ``hookStatus`` SUCCEEDED (the deployment goes on to its next stage), FAILED (ECS rolls the deployment
back) or IN_PROGRESS (ECS invokes it again after ``callBackDelay`` seconds, 30 by default, passing back the
``hookDetails`` the answer carried). "If your function doesn't return a valid hookStatus, or if it fails, Amazon ECS
rolls back the deployment": a function error, a timeout or a malformed answer is FAILED here.

>>> event = hook_event(
...     lifecycle_stage="POST_SCALE_UP",
...     service_deployment_arn="arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/abc",
...     service_arn="arn:aws:ecs:us-east-1:123456789012:service/prod/web",
...     target_service_revision_arn="arn:aws:ecs:us-east-1:123456789012:service-revision/prod/web/123",
...     execution_id="e1",
... )
>>> sorted(event)
['executionDetails', 'executionId', 'lifecycleStage', 'resourceArn']
>>> from opskit.sandbox.lambdas.runner import InvokeResult
>>> hook_outcome(InvokeResult("arn", "r", {"hookStatus": "IN_PROGRESS", "callBackDelay": 5}))
HookOutcome(status='IN_PROGRESS', callback_delay=5, hook_details=None, reason='')
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opskit.sandbox.lambdas.runner import InvokeResult

SUCCEEDED, FAILED, IN_PROGRESS = "SUCCEEDED", "FAILED", "IN_PROGRESS"
HOOK_STATUSES = (SUCCEEDED, FAILED, IN_PROGRESS)
DEFAULT_CALLBACK_DELAY = 30  # seconds ECS waits before invoking an IN_PROGRESS hook again, unless told otherwise
# The stages a hook may attach to (DeploymentLifecycleHook.lifecycleStages in botocore's ecs model).
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


def hook_event(
    *,
    lifecycle_stage: str,
    service_deployment_arn: str,
    service_arn: str,
    target_service_revision_arn: str,
    test_traffic_weights: Mapping[str, float] | None = None,
    production_traffic_weights: Mapping[str, float] | None = None,
    hook_details: Any = None,
    execution_id: str | None = None,
) -> dict[str, Any]:
    """The payload ECS invokes a hook's function with at ``lifecycle_stage`` of a service deployment.

    The weights map service revision ARNs to their share of the traffic (percent). ``hook_details`` is the hook's
    own (DeploymentLifecycleHook.hookDetails), or what the function's last IN_PROGRESS answer carried; it is left out
    when there is none. ``execution_id`` names this hook's execution (a new one by default).
    """
    if lifecycle_stage not in HOOK_STAGES:
        raise ValueError(
            f"{lifecycle_stage!r} is not a stage a lifecycle hook runs at: one of {', '.join(HOOK_STAGES)}"
        )
    event: dict[str, Any] = {
        "executionId": execution_id or str(uuid.uuid4()),
        "lifecycleStage": lifecycle_stage,
        "resourceArn": service_deployment_arn,
        "executionDetails": {
            "testTrafficWeights": dict(test_traffic_weights or {}),
            "productionTrafficWeights": dict(production_traffic_weights or {}),
            "serviceArn": service_arn,
            "targetServiceRevisionArn": target_service_revision_arn,
        },
    }
    if hook_details is not None:
        event["hookDetails"] = hook_details
    return event


@dataclass(frozen=True)
class HookOutcome:
    """What ECS does after one invocation of a hook's function.

    ``callback_delay``: for IN_PROGRESS, the seconds of deployment time (the sandbox clock's) before the next
    invocation; None otherwise. ``hook_details``: for IN_PROGRESS, what to pass to the next invocation.
    ``reason``: for FAILED, why, in words for the deployment's statusReason.
    """

    status: str
    callback_delay: float | None = None
    hook_details: Any = None
    reason: str = ""


def hook_outcome(result: InvokeResult) -> HookOutcome:
    """Read a hook function's answer as ECS does: anything but a valid answer is FAILED."""
    if result.failed:
        return HookOutcome(
            FAILED,
            reason=f"the lifecycle hook {result.function_arn} failed: {result.error_type}: {result.error_message}",
        )
    answer = result.payload
    if not isinstance(answer, dict):
        return _malformed(result, f"{type(answer).__name__}, not a JSON object with hookStatus")
    status = answer.get("hookStatus")
    if status not in HOOK_STATUSES:
        return _malformed(result, f"hookStatus {status!r} is not one of {', '.join(HOOK_STATUSES)}")
    if status != IN_PROGRESS:
        return HookOutcome(str(status))
    delay = answer.get("callBackDelay", DEFAULT_CALLBACK_DELAY)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        return _malformed(result, f"callBackDelay {delay!r} is not a number of seconds")
    details = answer.get("hookDetails")
    if details is not None and not isinstance(details, dict):
        return _malformed(result, f"hookDetails is {type(details).__name__}, not a JSON object")
    return HookOutcome(IN_PROGRESS, callback_delay=delay, hook_details=details)


def _malformed(result: InvokeResult, why: str) -> HookOutcome:
    return HookOutcome(FAILED, reason=f"the lifecycle hook {result.function_arn} returned an invalid answer: {why}")
