"""Findings for people and programs: a text table, JSON, a DataFrame and a one-line summary.

>>> summary([])
'no resources to check'
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opskit.checks.model import SEVERITIES, Finding, natural_key

if TYPE_CHECKING:
    import pandas as pd

TABLE_COLUMNS = ("status", "check_id", "severity", "resource", "message")


def ordered(findings: Sequence[Finding]) -> list[Finding]:
    """Failures first, the most severe first, then by check and resource."""
    return sorted(findings, key=lambda f: (f.passed, SEVERITIES.index(f.severity), f.id, natural_key(f.resource)))


def findings_table(findings: Sequence[Finding], *, failed_only: bool = False) -> str:
    """A fixed-width text table: status, check, severity, resource, message."""
    rows = [f for f in ordered(findings) if f.failed or not failed_only]
    if not rows:
        return "(no findings)"
    cells = [("STATUS", "CHECK", "SEVERITY", "RESOURCE", "MESSAGE")]
    cells += [(f.status, f.id, f.severity, f"{f.resource_type} {f.resource}", f.message) for f in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in cells
    )


def findings_json(findings: Sequence[Finding], *, failed_only: bool = False) -> str:
    """A JSON list of findings (check_id, severity, resource, message, passed, references ...)."""
    return json.dumps([f.to_dict() for f in ordered(findings) if f.failed or not failed_only], indent=2)


def findings_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    """One row per finding: check_id, name, group, severity (ordered category), status, passed, resource_type,
    resource, title, message, remediation, references (list of "Security Hub ECR.2" ...)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "check_id": [f.id for f in findings],
            "name": [f.name for f in findings],
            "group": [f.group for f in findings],
            "severity": pd.Categorical([f.severity for f in findings], categories=list(SEVERITIES), ordered=True),
            "status": [f.status for f in findings],
            "passed": pd.array([f.passed for f in findings], dtype="boolean"),
            "resource_type": [f.resource_type for f in findings],
            "resource": [f.resource for f in findings],
            "title": [f.title for f in findings],
            "message": [f.message for f in findings],
            "remediation": [f.remediation for f in findings],
            "references": [[str(r) for r in f.references] for f in findings],
        }
    )
    for name in ("check_id", "name", "group", "status", "resource_type", "resource", "title", "message", "remediation"):
        frame[name] = frame[name].astype("string")
    return frame


def summary(findings: Sequence[Finding]) -> str:
    """``3 of 40 findings failed (1 critical, 2 high) across 12 resources`` or ``all 40 passed ...``."""
    if not findings:
        return "no resources to check"
    resources = len({(f.resource_type, f.resource) for f in findings})
    failed = [f for f in findings if f.failed]
    if not failed:
        return f"all {len(findings)} checks passed across {resources} resources"
    by_severity = Counter(f.severity for f in failed)
    severities = ", ".join(f"{by_severity[s]} {s}" for s in SEVERITIES if by_severity[s])
    return f"{len(failed)} of {len(findings)} checks failed ({severities}) across {resources} resources"


__all__ = ["TABLE_COLUMNS", "findings_frame", "findings_json", "findings_table", "ordered", "summary"]
