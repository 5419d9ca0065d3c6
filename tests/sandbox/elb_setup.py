"""What a test reads off the load balancers a sandbox's deployments shift: a rule's weights, a target group's
health (the setup itself is :mod:`opskit.sandbox.alb`)."""

from __future__ import annotations

from typing import Any


def weights(elbv2: Any, rule_arn: str) -> dict[str, int]:
    """{target group ARN: weight} of a listener rule's forward action, as describe_rules shows it."""
    (rule,) = elbv2.describe_rules(RuleArns=[rule_arn])["Rules"]
    (action,) = [action for action in rule["Actions"] if action["Type"] == "forward"]
    return {group["TargetGroupArn"]: group["Weight"] for group in action["ForwardConfig"]["TargetGroups"]}


def health(elbv2: Any, target_group_arn: str, **options: Any) -> dict[str, tuple[str, str | None]]:
    """{target id: (state, reason)} as describe_target_health shows the target group."""
    described = elbv2.describe_target_health(TargetGroupArn=target_group_arn, **options)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason")) for d in described}
