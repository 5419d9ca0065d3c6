"""Copying a task-definition revision for a release: keep every field, change only the images.

Pure functions over the JSON bodies AWS returns (read with :meth:`opskit.aws.Aws.call_json`, so fields the
installed botocore does not model are there too).

>>> live = {"family": "web", "revision": 7, "status": "ACTIVE", "restartPolicy": {"enabled": True},
...         "containerDefinitions": [{"name": "app", "image": "repo/web:aaa"}]}
>>> new = with_images(registrable(live), {"app": "repo/web:bbb"})
>>> sorted(new), new["containerDefinitions"][0]["image"]
(['containerDefinitions', 'family', 'restartPolicy'], 'repo/web:bbb')
"""

from __future__ import annotations

import copy
import difflib
import json
from typing import Any

from opskit.masking import mask

# Returned by DescribeTaskDefinition, refused by RegisterTaskDefinition (notes: aws-facts). Only these go:
# an allowlist of what to keep would silently drop every field ECS adds after opskit was written.
READ_ONLY_FIELDS = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
        "deleteRequestedAt",
    }
)


MAX_BODY_BYTES = 64 * 1024  # ECS refuses a RegisterTaskDefinition request larger than this
MAX_TAGS = 50  # per resource, AWS's own (aws:) not counted


def body_size(body: dict[str, Any]) -> int:
    """Bytes of ``body`` as :meth:`opskit.aws.Aws.call_json` sends it: compact JSON in UTF-8 (a non-ASCII character
    is its UTF-8 bytes, not a six-byte escape)."""
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())


def registrable(described: dict[str, Any]) -> dict[str, Any]:
    """The body to register again: the described revision without its read-only fields."""
    return {key: copy.deepcopy(value) for key, value in described.items() if key not in READ_ONLY_FIELDS}


def with_images(body: dict[str, Any], images: dict[str, str]) -> dict[str, Any]:
    """A copy of ``body`` whose containers named in ``images`` point at the new image references."""
    out = copy.deepcopy(body)
    for container in out.get("containerDefinitions", []):
        if container.get("name") in images:
            container["image"] = images[container["name"]]
    return out


def same_body(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two revisions register the same thing (read-only fields aside)."""
    return _canonical(registrable(a)) == _canonical(registrable(b))


def diff(live: dict[str, Any], new: dict[str, Any], *, live_name: str = "live", new_name: str = "new") -> list[str]:
    """A unified diff of two bodies as pretty JSON, read-only fields left out and values masked (environment,
    where secrets come from), so that however much context it shows it never shows them; empty when the same."""
    return list(
        difflib.unified_diff(
            _pretty(mask(registrable(live))).splitlines(),
            _pretty(mask(registrable(new))).splitlines(),
            fromfile=live_name,
            tofile=new_name,
            lineterm="",
            n=2,
        )
    )


def _canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _pretty(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, indent=2)
