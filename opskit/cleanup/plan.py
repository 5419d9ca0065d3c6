"""The cleanup plan: every revision's (and image's) fate and the reason for it, decided without changing anything.

:func:`make_plan` is a pure function of an :class:`~opskit.cleanup.revisions.Inventory` (records) and the options;
:func:`opskit.cleanup.plan_cleanup` gathers the records from AWS or a library and calls it.

>>> plan = make_plan(inventory, CleanupOptions(keep=5))                  # doctest: +SKIP
>>> plan.summary()  # doctest: +SKIP
>>> plan.to_frame().query("fate != 'keep'")[["family", "revision", "fate", "reason"]]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from opskit.cleanup import frames
from opskit.cleanup.images import IMAGE_DELETE, ImageDecision, decide_images
from opskit.cleanup.options import CleanupOptions
from opskit.cleanup.revisions import FATES, Inventory, RevisionDecision, decide_revisions


@dataclass(frozen=True)
class Resumed:
    """Where a plan came from when it is an interrupted run's, read back from its journal."""

    journal: str
    started_at: str
    done: int  # actions the journal records as done


@dataclass(frozen=True)
class CleanupPlan:
    """What a cleanup would do; shows itself as DataFrames (:meth:`to_frame`, :meth:`images_frame`,
    :meth:`summary`), as HTML in a notebook and as a dict (:meth:`to_dict`, JSON-ready)."""

    options: CleanupOptions
    revisions: tuple[RevisionDecision, ...]
    images: tuple[ImageDecision, ...] = ()
    made_at: datetime | None = None
    resumed: Resumed | None = field(default=None, compare=False)

    # -- what it does ------------------------------------------------------------------------------------------
    @property
    def to_deregister(self) -> list[RevisionDecision]:
        return [d for d in self.revisions if d.deregisters]

    @property
    def to_delete(self) -> list[RevisionDecision]:
        return [d for d in self.revisions if d.deletes]

    @property
    def images_to_delete(self) -> list[ImageDecision]:
        return [d for d in self.images if d.fate == IMAGE_DELETE]

    @property
    def empty(self) -> bool:
        return not self.to_deregister and not self.to_delete and not self.images_to_delete

    @property
    def counts(self) -> dict[str, int]:
        """Revisions per fate, and images to delete and keep."""
        fates = Counter(d.fate for d in self.revisions)
        out = {fate: fates.get(fate, 0) for fate in FATES}
        if self.options.images:
            deleting = len(self.images_to_delete)
            out.update({"images_delete": deleting, "images_keep": len(self.images) - deleting})
        return out

    @property
    def calls(self) -> dict[str, int]:
        """The mutating API calls the plan needs: deregisters, DeleteTaskDefinitions batches of 10,
        BatchDeleteImage batches of 100 per repository."""
        per_repository = Counter(d.repository for d in self.images_to_delete)
        return {
            "DeregisterTaskDefinition": len(self.to_deregister),
            "DeleteTaskDefinitions": -(-len(self.to_delete) // 10),
            "BatchDeleteImage": sum(-(-n // 100) for n in per_repository.values()),
        }

    @property
    def key(self) -> str:
        """A short digest of the actions: the same actions give the same key (names the run's journal)."""
        actions = [(d.arn, d.fate) for d in self.revisions if d.acts] + [(d.key, d.fate) for d in self.images_to_delete]
        blob = json.dumps([self.options.to_dict(), actions], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- how it shows itself -----------------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """One row per revision in scope (columns: :data:`opskit.cleanup.frames.PLAN_REVISIONS`)."""
        return frames.revisions_frame(self.revisions)

    def images_frame(self) -> pd.DataFrame:
        """One row per image in scope (columns: :data:`opskit.cleanup.frames.PLAN_IMAGES`); empty without images."""
        return frames.images_frame(self.images)

    def summary(self) -> pd.DataFrame:
        """Counts per family: revisions on record and how many have each fate."""
        return frames.summary_frame(self.revisions)

    def describe(self) -> str:
        """One line: what the plan does."""
        c = self.counts
        text = (
            f"{len(self.revisions)} revisions: keep {c['keep']}, deregister {c['deregister'] + c['deregister+delete']}"
            f", delete {c['delete'] + c['deregister+delete']}"
        )
        if c["deleting"]:
            text += f", {c['deleting']} already being deleted"
        if self.options.images:
            text += f"; {len(self.images)} images: delete {c['images_delete']}, keep {c['images_keep']}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "options": self.options.to_dict(),
            "made_at": self.made_at.isoformat() if self.made_at else None,
            "key": self.key,
            "counts": self.counts,
            "calls": self.calls,
            "resumed": None if self.resumed is None else self.resumed.__dict__,
            "revisions": [d.to_dict() for d in self.revisions],
            "images": [d.to_dict() for d in self.images],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], resumed: Resumed | None = None) -> CleanupPlan:
        made = data.get("made_at")
        return cls(
            options=CleanupOptions.from_dict(data["options"]),
            revisions=tuple(RevisionDecision.from_dict(d) for d in data.get("revisions") or ()),
            images=tuple(ImageDecision.from_dict(d) for d in data.get("images") or ()),
            made_at=datetime.fromisoformat(made) if made else None,
            resumed=resumed,
        )

    def _repr_html_(self) -> str:
        acting = self.to_frame().query("fate != 'keep'")
        title = "Cleanup plan" + (" (resuming an interrupted run)" if self.resumed else "")
        parts = [
            f"<div class='opskit-plan'><b>{html.escape(title)}</b>: {html.escape(self.describe())}",
            frames.html_table(self.summary()),
            "<p>Revisions that change</p>"
            + frames.html_table(acting[["family", "revision", "status", "fate", "reason"]]),
        ]
        if self.options.images:
            images = self.images_frame().query("fate == 'delete'")
            parts.append(
                "<p>Images to delete</p>" + frames.html_table(images[["repository", "digest", "tags", "reason"]])
            )
        return "".join(parts) + "</div>"


def make_plan(inventory: Inventory, options: CleanupOptions) -> CleanupPlan:
    """The plan for ``inventory`` under ``options``: a pure function (hypothesis drives it in the tests)."""
    revisions = decide_revisions(inventory, options)
    images = decide_images(inventory, revisions, options) if options.images else []
    return CleanupPlan(options=options, revisions=tuple(revisions), images=tuple(images), made_at=inventory.now)


__all__ = ["CleanupPlan", "Resumed", "make_plan"]
