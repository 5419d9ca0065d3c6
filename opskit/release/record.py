"""What a release (or rollback) did: returned by apply, shown as an object, a DataFrame row and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ReleaseRecord:
    kind: str  # "release" or "rollback"
    cluster: str
    service: str
    commit: str | None
    image: str | None
    digest: str | None
    revision_arn: str | None
    deployment_id: str | None
    outcome: str  # COMPLETED, FAILED, ROLLED_BACK, REPLACED, TIMED_OUT, REFUSED
    reason: str
    started_at: str
    finished_at: str | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def ok(self) -> bool:
        return self.outcome == "COMPLETED"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def row(self) -> dict[str, Any]:
        """The record as one flat row: its fields, and ``<stage>_seconds`` for each stage."""
        row = {k: v for k, v in self.to_dict().items() if k != "stages"}
        row.update({f"{stage}_seconds": seconds for stage, seconds in self.stages.items()})
        return row

    def to_text(self) -> str:
        """One ``name  value`` line per field (``started_at`` left out: the progress lines said when)."""
        row = {k: v for k, v in self.row().items() if k != "started_at"}
        width = max(len(name) for name in row)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in row.items())

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame([self.row()])
        for column in ("started_at", "finished_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame
