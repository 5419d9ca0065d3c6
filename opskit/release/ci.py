"""A release told to the CI system that ran it, as that system reads it.

On GitHub Actions (``GITHUB_ACTIONS=true``): a Markdown summary appended to ``$GITHUB_STEP_SUMMARY``, the record's key
values appended to ``$GITHUB_OUTPUT`` (``name=value`` lines, a value with a line break in GitHub's ``name<<DELIMITER``
form) for later steps as ``steps.<id>.outputs.<name>``, and a failure as an ``::error`` annotation. Elsewhere
(CodeBuild, any runner): nothing but the plain lines the command prints anyway. Nothing here changes the outcome:
a summary that cannot be written is said on stderr and the release's exit code stands.

>>> publish(record, os.environ)                                            # doctest: +SKIP
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from opskit.release.record import ReleaseRecord

OUTPUTS = (
    "outcome",
    "exit_code",
    "revision_arn",
    "image",
    "digest",
    "commit",
    "deployment_id",
    "service_deployment_arn",
)


def detect(env: Mapping[str, str]) -> str | None:
    """The CI system the command runs under: ``github``, ``codebuild``, ``ci`` (any other that sets CI), or None."""
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("CODEBUILD_BUILD_ID"):
        return "codebuild"
    if env.get("CI", "").lower() in ("true", "1", "yes"):
        return "ci"
    return None


def summary(record: ReleaseRecord) -> str:
    """The release as Markdown: a heading with its outcome, its key values, its stages, and why it failed."""
    mark = "✅" if record.ok else "❌"
    where = f"`{record.cluster}/{record.service}`"
    lines = [f"### {mark} {record.kind} {record.commit[:12] if record.commit else ''} to {where}: {record.outcome}", ""]
    lines += ["| | |", "|---|---|"]
    rows = {
        "outcome": record.outcome,
        "reason": record.reason,
        "cause": record.cause,
        "revision": record.revision_arn,
        "image": record.image,
        "digest": record.digest,
        "commit": record.commit,
        "deployment": record.service_deployment_arn or record.deployment_id,
    }
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows.items() if value]
    if record.stages:
        stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in record.stages.items())
        lines += ["", f"Stages: {stages}"]
    if record.failure is not None:
        frame = record.failure_frame()
        lines += ["", "<details><summary>Why it failed</summary>", "", "| kind | subject | status | detail |"]
        lines += ["|---|---|---|---|"]
        lines += [f"| {' | '.join(_cell(v) for v in row)} |" for row in frame.itertuples(index=False)]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def outputs(record: ReleaseRecord) -> str:
    """The record's key values as ``$GITHUB_OUTPUT`` takes them."""
    values = {"outcome": record.outcome, "exit_code": str(record.exit_code), **_fields(record)}
    text = []
    for name in OUTPUTS:
        value = values.get(name) or ""
        if "\n" in value or "\r" in value:
            delimiter = f"opskit_{uuid.uuid4().hex}"
            text.append(f"{name}<<{delimiter}\n{value}\n{delimiter}")
        else:
            text.append(f"{name}={value}")
    return "\n".join(text) + "\n"


def annotation(record: ReleaseRecord) -> str:
    """A failed release as a GitHub ``::error`` workflow command (its data escaped as GitHub asks)."""
    message = record.reason + (f" Cause: {record.cause}" if record.cause else "")
    title = f"opskit {record.kind} of {record.service}: {record.outcome}"
    return f"::error title={_escape(title, property=True)}::{_escape(message)}"


def publish(
    record: ReleaseRecord, env: Mapping[str, str], *, system: str | None = None, err: TextIO | None = None
) -> None:
    """Tell the CI system ``env`` names (or ``system``) about ``record``; on GitHub Actions, its summary, outputs and
    failure annotation."""
    err = err or sys.stderr
    if (system or detect(env)) != "github":
        return
    for variable, text in (("GITHUB_STEP_SUMMARY", summary(record)), ("GITHUB_OUTPUT", outputs(record))):
        path = env.get(variable)
        if not path:
            continue
        try:
            with Path(path).open("a", encoding="utf-8") as file:
                file.write(text)
        except OSError as exc:
            err.write(f"opskit: could not write ${variable} ({exc}): the release's outcome stands\n")
    if not record.ok:
        err.write(annotation(record) + "\n")
    err.flush()


def _fields(record: ReleaseRecord) -> dict[str, str]:
    return {
        "revision_arn": record.revision_arn or "",
        "image": record.image or "",
        "digest": record.digest or "",
        "commit": record.commit or "",
        "deployment_id": record.deployment_id or "",
        "service_deployment_arn": record.service_deployment_arn or "",
    }


def _cell(value: object) -> str:
    """A value in a Markdown table cell: one line, its pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _escape(text: str, *, property: bool = False) -> str:
    """GitHub's escaping of workflow command data (``%``, CR, LF), and of properties (also ``:`` and ``,``)."""
    out = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return out.replace(":", "%3A").replace(",", "%2C") if property else out


__all__ = ["annotation", "detect", "outputs", "publish", "summary"]
