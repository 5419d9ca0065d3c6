"""Masking the values a task definition carries, so a revision's body can be shown without leaking them.

Masked: every environment variable's value, and where secrets come from (``secrets[].valueFrom`` of containers
and of their log configuration's ``secretOptions``). Names stay, so a masked body still says what is set.

>>> body = {"taskDefinition": {"containerDefinitions": [
...     {"name": "web", "environment": [{"name": "TOKEN", "value": "s3cr3t"}]}]}}
>>> mask(body)["taskDefinition"]["containerDefinitions"][0]["environment"]
[{'name': 'TOKEN', 'value': '********'}]
"""

from __future__ import annotations

import copy
from typing import Any

MASK = "********"


def mask(answer: dict[str, Any]) -> dict[str, Any]:
    """A copy of a DescribeTaskDefinition answer (or a bare task definition) with values masked."""
    out = copy.deepcopy(answer)
    body = out.get("taskDefinition", out)
    for container in body.get("containerDefinitions") or []:
        for variable in container.get("environment") or []:
            if "value" in variable:
                variable["value"] = MASK
        for secret in container.get("secrets") or []:
            if "valueFrom" in secret:
                secret["valueFrom"] = MASK
        for secret in (container.get("logConfiguration") or {}).get("secretOptions") or []:
            if "valueFrom" in secret:
                secret["valueFrom"] = MASK
    return out


__all__ = ["MASK", "mask"]
