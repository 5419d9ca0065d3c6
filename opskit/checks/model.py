"""What a policy check is and what it finds.

A :class:`Check` is a pure function over a :class:`~opskit.checks.snapshot.Snapshot` with its metadata (ID,
severity, title, remediation, cross-references); running it gives one :class:`Finding` per resource it looked at,
passed or not, so a CI run can show each resource's result and a report can count what passed.

>>> ref = Reference("Security Hub", "ECR.2", "ECR private repositories should have tag immutability configured")
>>> str(ref)
'Security Hub ECR.2'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.checks.snapshot import Snapshot

SEVERITIES = ("critical", "high", "medium", "low")
GROUPS = ("release", "hardening")
RESOURCE_TYPES = ("repository", "revision", "family", "service")

AWS_CONFIG = "AWS Config"
SECURITY_HUB = "Security Hub"
CHECKOV = "Checkov"


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort ``web:9`` before ``web:10``: digit runs compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


@dataclass(frozen=True)
class Reference:
    """The same rule in another tool: an AWS Config managed rule, a Security Hub control or a Checkov check."""

    framework: str
    id: str
    title: str = ""
    url: str = ""

    def __str__(self) -> str:
        return f"{self.framework} {self.id}"

    @property
    def key(self) -> str:
        """A property name for JUnit XML and JSON: ``aws_config``, ``security_hub``, ``checkov``."""
        return self.framework.lower().replace(" ", "_")

    def to_dict(self) -> dict[str, str]:
        return {"framework": self.framework, "id": self.id, "title": self.title, "url": self.url}


@dataclass(frozen=True)
class Outcome:
    """What a check function says about one resource; :meth:`Check.run` turns it into a :class:`Finding`."""

    resource: str
    passed: bool
    message: str


@dataclass(frozen=True)
class Check:
    """One rule: ``evaluate(snapshot)`` yields an :class:`Outcome` per resource of ``resource_type`` in scope."""

    id: str
    name: str  # a slug for test names: "tag-immutability"
    group: str  # "release" or "hardening"
    severity: str
    title: str  # what must hold, as a sentence
    remediation: str  # how to make it hold
    resource_type: str  # "repository" (name), "revision" (family:revision), "family", "service" (cluster/service)
    references: tuple[Reference, ...] = ()
    evaluate: Callable[[Snapshot], Iterable[Outcome]] = field(default=lambda _: (), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES or self.group not in GROUPS or self.resource_type not in RESOURCE_TYPES:
            raise ValueError(f"check {self.id}: bad severity, group or resource type")

    def run(self, snapshot: Snapshot) -> list[Finding]:
        """One finding per resource, in the order of the resources' names."""
        outcomes = sorted(self.evaluate(snapshot), key=lambda o: natural_key(o.resource))
        return [self.finding(o) for o in outcomes]

    def finding(self, outcome: Outcome) -> Finding:
        return Finding(
            id=self.id,
            name=self.name,
            group=self.group,
            severity=self.severity,
            title=self.title,
            remediation=self.remediation,
            resource_type=self.resource_type,
            resource=outcome.resource,
            passed=outcome.passed,
            message=outcome.message,
            references=self.references,
        )


@dataclass(frozen=True)
class Finding:
    """The result of one check on one resource. ``message`` names what is wrong (revision, image, tag, filter,
    rule) and never holds a secret value."""

    id: str  # the check's ID
    name: str
    group: str
    severity: str
    title: str
    remediation: str
    resource_type: str
    resource: str
    passed: bool
    message: str
    references: tuple[Reference, ...] = ()

    @property
    def failed(self) -> bool:
        return not self.passed

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def explain(self) -> str:
        """The finding as a few lines for a person: what, where, why, how to fix it, and where else it is checked."""
        lines = [
            f"{self.id} {self.resource_type} {self.resource}: {self.message}",
            f"rule: {self.title} ({self.severity})",
        ]
        if not self.passed:
            lines.append(f"fix: {self.remediation}")
        if self.references:
            lines.append("see also: " + ", ".join(str(r) for r in self.references))
        return "\n".join(lines)

    def properties(self) -> list[tuple[str, str]]:
        """Name/value pairs for JUnit XML ``<properties>``: the check, the resource and the cross-references."""
        pairs = [
            ("check_id", self.id),
            ("check_name", self.name),
            ("check_group", self.group),
            ("severity", self.severity),
            ("resource_type", self.resource_type),
            ("resource", self.resource),
        ]
        pairs += [(reference.key, reference.id) for reference in self.references]
        return pairs

    def to_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.id,
            "name": self.name,
            "group": self.group,
            "severity": self.severity,
            "resource_type": self.resource_type,
            "resource": self.resource,
            "passed": self.passed,
            "status": self.status,
            "title": self.title,
            "message": self.message,
            "remediation": self.remediation,
            "references": [r.to_dict() for r in self.references],
        }


__all__ = [
    "AWS_CONFIG",
    "CHECKOV",
    "GROUPS",
    "RESOURCE_TYPES",
    "SECURITY_HUB",
    "SEVERITIES",
    "Check",
    "Finding",
    "Outcome",
    "Reference",
    "natural_key",
]
