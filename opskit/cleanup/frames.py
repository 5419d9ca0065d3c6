"""The cleanup's tables: the plan (revisions, images, a summary per family) and the result, with real dtypes.

Dtypes follow the library's (:mod:`opskit.library.columns`): ``string``, ``Int64``, ``datetime`` (UTC),
``category`` with fixed categories, ``list`` (a list of strings per row).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from opskit.cleanup.images import IMAGE_DELETE, IMAGE_KEEP, ImageDecision
from opskit.cleanup.revisions import FATES, RevisionDecision
from opskit.library.columns import Column
from opskit.library.frames import typed_frame
from opskit.records import REVISION_STATUSES

# What happened to each revision (or image) in an apply.
OUTCOMES = (
    "kept",  # the plan keeps it
    "deregistered",  # now INACTIVE
    "deleted",  # DeleteTaskDefinitions accepted it and nothing uses it: ECS removes it (within minutes: status_after
    # DELETE_IN_PROGRESS until then); images: BatchDeleteImage deleted it
    "delete_in_progress",  # accepted; ECS holds it in DELETE_IN_PROGRESS while a task or service still uses it
    "skipped",  # it became protected after the plan (re-checked right before acting): left alone
    "already",  # it was already in the state the plan wanted (an earlier, interrupted run or someone else did it)
    "gone",  # it no longer existed
    "failed",  # AWS refused; failure_reason and failure_detail say why (the API's failures list)
    "pending",  # not reached: the run was interrupted before it
)

PLAN_REVISIONS = (
    Column("family", "string", "task-definition family"),
    Column("revision", "Int64", "revision number"),
    Column("status", "category", "status when planned", REVISION_STATUSES),
    Column("fate", "category", "keep, deregister, deregister+delete, delete, or deleting (already requested)", FATES),
    Column("reason", "string", "why: the strongest reason to keep it, or the facts that let it go"),
    Column("protections", "list", "every reason to keep it: deployment, task, rollback, pinned, newest, young"),
    Column("registered_at", "datetime", "when it was registered"),
    Column("arn", "string", "task-definition ARN"),
)
PLAN_IMAGES = (
    Column("repository", "string", "ECR repository"),
    Column("digest", "string", "image manifest digest"),
    Column("tags", "list", "tags pointing at it"),
    Column("pushed_at", "datetime", "when it was pushed"),
    Column("fate", "category", "keep or delete", (IMAGE_KEEP, IMAGE_DELETE)),
    Column("reason", "string", "why"),
    Column("protections", "list", "kept-revision, task, remaining-revision, index, index-unread, young"),
    Column("referenced_by", "list", "revisions (family:revision) that refer to it"),
    Column("size_bytes", "Int64", "size ECR reports"),
)
SUMMARY = (
    Column("family", "string", "task-definition family"),
    Column("revisions", "Int64", "revisions on record"),
    *(Column(fate, "Int64", f"revisions whose fate is {fate}") for fate in FATES),
)
RESULT_REVISIONS = (
    Column("family", "string", "task-definition family"),
    Column("revision", "Int64", "revision number"),
    Column("fate", "category", "what the plan wanted", FATES),
    Column("outcome", "category", "what happened", OUTCOMES),
    Column("detail", "string", "why it was skipped, or what AWS said"),
    Column("failure_reason", "string", "the reason from DeleteTaskDefinitions' failures list, or the error code"),
    Column("failure_detail", "string", "the detail from the failures list, or the error message"),
    Column("status_after", "string", "ACTIVE, INACTIVE, DELETE_IN_PROGRESS, or gone, as last seen"),
    Column("arn", "string", "task-definition ARN"),
)
RESULT_IMAGES = (
    Column("repository", "string", "ECR repository"),
    Column("digest", "string", "image manifest digest"),
    Column("fate", "category", "what the plan wanted", (IMAGE_KEEP, IMAGE_DELETE)),
    Column("outcome", "category", "what happened", OUTCOMES),
    Column("detail", "string", "why it was skipped, or what AWS said"),
    Column("failure_reason", "string", "failureCode from BatchDeleteImage"),
    Column("failure_detail", "string", "failureReason from BatchDeleteImage"),
)


def micros(value: datetime | None) -> int | None:
    return None if value is None else round(value.timestamp() * 1_000_000)


def frame(spec: Sequence[Column], rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    return typed_frame(spec, list(rows))


def revisions_frame(decisions: Iterable[RevisionDecision]) -> pd.DataFrame:
    return frame(
        PLAN_REVISIONS,
        (
            (
                d.family,
                d.revision,
                d.status,
                d.fate,
                d.reason,
                _json_list(d.protections),
                micros(d.registered_at),
                d.arn,
            )
            for d in decisions
        ),
    )


def images_frame(decisions: Iterable[ImageDecision]) -> pd.DataFrame:
    return frame(
        PLAN_IMAGES,
        (
            (
                d.repository,
                d.digest,
                _json_list(d.tags),
                micros(d.pushed_at),
                d.fate,
                d.reason,
                _json_list(d.protections),
                _json_list(d.referenced_by),
                d.size_bytes,
            )
            for d in decisions
        ),
    )


def summary_frame(decisions: Iterable[RevisionDecision]) -> pd.DataFrame:
    counts: dict[str, dict[str, int]] = {}
    for d in decisions:
        row = counts.setdefault(d.family, dict.fromkeys(FATES, 0))
        row[d.fate] += 1
    return frame(
        SUMMARY,
        ((family, sum(row.values()), *(row[f] for f in FATES)) for family, row in sorted(counts.items())),
    )


def html_table(data: pd.DataFrame, limit: int = 40) -> str:
    """A small HTML table (the first ``limit`` rows), cells escaped, for notebooks."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in data.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in data.head(limit).itertuples(index=False)
    )
    more = f"<p>... and {len(data) - limit} more rows</p>" if len(data) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if value is None or value is pd.NA or value is pd.NaT:
        return "-"
    if isinstance(value, pd.Timestamp):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    return str(value)


def _json_list(values: Iterable[str]) -> str:
    import json

    return json.dumps(list(values))


__all__ = [
    "OUTCOMES",
    "PLAN_IMAGES",
    "PLAN_REVISIONS",
    "RESULT_IMAGES",
    "RESULT_REVISIONS",
    "SUMMARY",
    "frame",
    "html_table",
    "images_frame",
    "micros",
    "revisions_frame",
    "summary_frame",
]
