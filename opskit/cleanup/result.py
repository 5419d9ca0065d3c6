"""What a cleanup did: each revision's and image's outcome (the API's failures included), as DataFrames and JSON.

>>> result = apply_cleanup(plan, aws)                                    # doctest: +SKIP
>>> failed = result.to_frame().query("outcome == 'failed'")                 # doctest: +SKIP
>>> failed[["family", "revision", "failure_reason", "failure_detail"]]      # doctest: +SKIP
>>> result.counts  # doctest: +SKIP
{'kept': 12, 'deregistered': 30, 'deleted': 18, 'skipped': 1}
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from opskit.cleanup import frames
from opskit.cleanup.plan import CleanupPlan


def outcome(
    key: str,
    result: str,
    *,
    step: str = "",
    detail: str = "",
    failure_reason: str = "",
    failure_detail: str = "",
    status_after: str = "",
) -> dict[str, Any]:
    """One journal/result entry: what an action did to one revision (``key`` is its ARN) or image."""
    return {
        "key": key,
        "step": step,
        "outcome": result,
        "detail": detail,
        "failure_reason": failure_reason,
        "failure_detail": failure_detail,
        "status_after": status_after,
    }


@dataclass
class CleanupResult:
    """The plan, and per revision (and image) what happened. ``ok`` is False when anything failed or was not
    reached; ``journal`` is the run's journal on disk."""

    plan: CleanupPlan
    revision_outcomes: dict[str, dict[str, Any]]  # by ARN: the final outcome of each revision the plan covers
    image_outcomes: dict[str, dict[str, Any]]  # by repository@digest
    journal: str
    seconds: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    resumed: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(o["outcome"] for o in self.revision_outcomes.values()))

    @property
    def image_counts(self) -> dict[str, int]:
        return dict(Counter(o["outcome"] for o in self.image_outcomes.values()))

    @property
    def ok(self) -> bool:
        outcomes = [*self.revision_outcomes.values(), *self.image_outcomes.values()]
        return not any(o["outcome"] in ("failed", "pending") for o in outcomes)

    def to_frame(self) -> pd.DataFrame:
        """One row per revision of the plan (columns: :data:`opskit.cleanup.frames.RESULT_REVISIONS`)."""
        rows = []
        for d in self.plan.revisions:
            o = self.revision_outcomes.get(d.arn) or {}
            rows.append(
                (
                    d.family,
                    d.revision,
                    d.fate,
                    o.get("outcome", "pending"),
                    o.get("detail") or None,
                    o.get("failure_reason") or None,
                    o.get("failure_detail") or None,
                    o.get("status_after") or None,
                    d.arn,
                )
            )
        return frames.frame(frames.RESULT_REVISIONS, rows)

    def images_frame(self) -> pd.DataFrame:
        """One row per image of the plan (columns: :data:`opskit.cleanup.frames.RESULT_IMAGES`)."""
        rows = []
        for d in self.plan.images:
            o = self.image_outcomes.get(d.key) or {}
            rows.append(
                (
                    d.repository,
                    d.digest,
                    d.fate,
                    o.get("outcome", "pending"),
                    o.get("detail") or None,
                    o.get("failure_reason") or None,
                    o.get("failure_detail") or None,
                )
            )
        return frames.frame(frames.RESULT_IMAGES, rows)

    def describe(self) -> str:
        """One line: what happened."""
        parts = ", ".join(f"{name} {n}" for name, n in sorted(self.counts.items()))
        text = f"revisions: {parts or 'none'}"
        if self.plan.options.images:
            text += "; images: " + (", ".join(f"{k} {n}" for k, n in sorted(self.image_counts.items())) or "none")
        return f"{text} ({sum(self.calls.values())} API calls, {self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        revisions = self.to_frame()
        images = self.images_frame()
        return {
            "ok": self.ok,
            "counts": self.counts,
            "image_counts": self.image_counts,
            "journal": self.journal,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "calls": self.calls,
            "throttled": self.throttled,
            "revisions": json.loads(revisions.to_json(orient="records")),
            "images": json.loads(images.to_json(orient="records")),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def _repr_html_(self) -> str:
        changed = self.to_frame().query("outcome != 'kept'")
        columns = ["family", "revision", "fate", "outcome", "detail", "failure_reason"]
        body = f"<b>Cleanup</b>: {html.escape(self.describe())}" + frames.html_table(changed[columns])
        if self.plan.options.images:
            images = self.images_frame().query("outcome != 'kept'")
            body += frames.html_table(images[["repository", "digest", "outcome", "detail"]])
        return f"<div class='opskit-result'>{body}</div>"


__all__ = ["CleanupResult", "outcome"]
