"""ECR lifecycle policies, evaluated against a repository's images the way ECR evaluates them.

ECR's rules ("Lifecycle policy evaluation rules" in the ECR user guide): every rule is evaluated at once, then
applied by priority (lowest ``rulePriority`` first); an image is expired by one rule or none; an image that matches
the tagging requirements of a rule cannot be expired by a lower-priority rule, though lower-priority rules still
count it; ``tagPrefixList`` and ``tagPatternList`` select an image only when *every* entry matches one of its tags;
``imageCountMoreThan`` keeps the newest images by push time; ``sinceImagePushed`` expires images older than the
count in days. So the only rule that can remove an image is the first rule whose selection matches it: its
*governing* rule.

Archiving (``"action": {"type": "transition"}``) counts as removal here: an archived image cannot be pulled.

>>> rules = parse_policy('{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged",'
...                      ' "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},'
...                      ' "action": {"type": "expire"}}]}')
>>> rules[0].selects(()), rules[0].selects(("3f2a9c1e8b2d",))
(True, False)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opskit.checks.wildcards import wildcard_matches
from opskit.records import ImageRecord

COUNT_MORE_THAN = "imageCountMoreThan"
SINCE_PUSHED = "sinceImagePushed"
SINCE_PULLED = "sinceImagePulled"
TAG_STATUSES = ("tagged", "untagged", "any")
_EPOCH = datetime.min.replace(tzinfo=UTC)


class PolicyError(ValueError):
    """A lifecycle policy text that is not a policy ECR would accept."""


@dataclass(frozen=True)
class LifecycleRule:
    """One rule of a lifecycle policy."""

    priority: int
    description: str
    tag_status: str  # tagged, untagged or any
    tag_prefixes: tuple[str, ...]
    tag_patterns: tuple[str, ...]
    count_type: str  # imageCountMoreThan, sinceImagePushed, sinceImagePulled, sinceImageTransitioned ...
    count_number: int
    action: str  # expire or transition (to archive)
    storage_class: str = "standard"

    @property
    def label(self) -> str:
        return f"rule {self.priority}" + (f" ({self.description})" if self.description else "")

    @property
    def counts(self) -> bool:
        """Removes images beyond a count (new pushes move them out); otherwise time alone removes them."""
        return self.count_type == COUNT_MORE_THAN

    def selects(self, tags: Sequence[str]) -> bool:
        """The image with ``tags`` matches this rule's tagging requirements."""
        if self.storage_class != "standard":
            return False  # it selects archived images only, and images in use are not archived
        if self.tag_status == "untagged":
            return not tags
        if self.tag_status == "tagged" and not tags:
            return False
        return all(any(t.startswith(p) for t in tags) for p in self.tag_prefixes) and all(
            any(wildcard_matches(w, t) for t in tags) for w in self.tag_patterns
        )

    def describe(self) -> str:
        """What the rule does, in a few words: ``expires tagged images matching a*, beyond the newest 10``."""
        verb = "archives" if self.action == "transition" else "expires"
        which = {"untagged": "untagged images", "any": "any image", "tagged": "tagged images"}.get(
            self.tag_status, "images"
        )
        if self.tag_prefixes:
            which += " with tags starting " + " and ".join(self.tag_prefixes)
        if self.tag_patterns:
            which += " with tags matching " + " and ".join(self.tag_patterns)
        if self.counts:
            when = f"beyond the newest {self.count_number}"
        elif self.count_type == SINCE_PUSHED:
            when = f"{self.count_number} days after their push"
        elif self.count_type == SINCE_PULLED:
            when = f"{self.count_number} days after their last pull"
        else:
            when = f"after {self.count_number} ({self.count_type})"
        return f"{self.label} {verb} {which} {when}"


@dataclass(frozen=True)
class Verdict:
    """What a policy does to one image: the rule that governs it and when that rule removes it (``due``; None
    when a count rule keeps it for now)."""

    digest: str
    rule: LifecycleRule
    due: datetime | None

    def removed_by(self, moment: datetime) -> bool:
        return self.due is not None and self.due <= moment


def parse_policy(text: str) -> tuple[LifecycleRule, ...]:
    """The rules of a lifecycle policy text, by priority. Unknown count types and actions are kept (a newer
    policy than this code knows) and judged as removing what they select."""
    try:
        body = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"the lifecycle policy is not JSON ({exc})") from exc
    raw_rules = body.get("rules") if isinstance(body, dict) else None
    if not isinstance(raw_rules, list) or not raw_rules:
        raise PolicyError("the lifecycle policy has no rules")
    rules = [_rule(raw) for raw in raw_rules]
    priorities = [r.priority for r in rules]
    if len(set(priorities)) != len(priorities):
        raise PolicyError("two lifecycle rules share a rulePriority")
    return tuple(sorted(rules, key=lambda r: r.priority))


def _rule(raw: Any) -> LifecycleRule:
    if not isinstance(raw, dict):
        raise PolicyError("a lifecycle rule is not an object")
    selection = raw.get("selection") or {}
    action = raw.get("action") or {}
    try:
        priority = int(raw["rulePriority"])
        count_number = int(selection["countNumber"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"a lifecycle rule lacks {exc}: rulePriority and selection.countNumber are required") from exc
    status = str(selection.get("tagStatus", ""))
    if status not in TAG_STATUSES:
        raise PolicyError(f"lifecycle rule {priority}: tagStatus {status!r} is not tagged, untagged or any")
    return LifecycleRule(
        priority=priority,
        description=str(raw.get("description") or ""),
        tag_status=status,
        tag_prefixes=tuple(str(p) for p in selection.get("tagPrefixList") or []),
        tag_patterns=tuple(str(p) for p in selection.get("tagPatternList") or []),
        count_type=str(selection.get("countType", "")),
        count_number=count_number,
        action=str(action.get("type") or "expire"),
        storage_class=str(selection.get("storageClass") or "standard"),
    )


def governing_rule(rules: Sequence[LifecycleRule], tags: Sequence[str]) -> LifecycleRule | None:
    """The first rule (by priority) whose tagging requirements the image matches: the only one that can remove it."""
    return next((rule for rule in rules if rule.selects(tags)), None)


def evaluate(rules: Sequence[LifecycleRule], images: Sequence[ImageRecord], now: datetime) -> dict[str, Verdict]:
    """For each image some rule governs (by digest): that rule, and when it removes the image.

    A count rule counts every image it selects, newest push first, and removes those beyond the count now (due
    ``now``) or none (due None). A time rule removes each image when it is old enough: due is its push time plus
    the count in days (for ``sinceImagePulled``, the earliest that can be: pulls postpone it).
    """
    ordered = sorted(rules, key=lambda r: r.priority)
    beyond: dict[int, set[str]] = {}
    for rule in ordered:
        if rule.counts:
            chosen = sorted(
                (i for i in images if rule.selects(i.tags)),
                key=lambda i: (i.pushed_at or _EPOCH, i.digest),
                reverse=True,
            )
            beyond[rule.priority] = {i.digest for i in chosen[rule.count_number :]}
    verdicts: dict[str, Verdict] = {}
    for image in images:
        governing = governing_rule(ordered, image.tags)
        if governing is None:
            continue
        if governing.counts:
            due = now if image.digest in beyond[governing.priority] else None
        else:
            due = (image.pushed_at or _EPOCH) + timedelta(days=governing.count_number)
        verdicts[image.digest] = Verdict(image.digest, governing, due)
    return verdicts


__all__ = ["LifecycleRule", "PolicyError", "Verdict", "evaluate", "governing_rule", "parse_policy"]
