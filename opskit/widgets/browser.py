"""RevisionBrowser: the revision library as filters over a table, one revision's details, and the release timeline.

A thin view over :class:`opskit.library.RevisionLibrary`: Sync runs :meth:`~RevisionLibrary.sync` in the background
(its progress drawn by a :class:`~opskit.widgets.common.ProgressView`), and everything else reads the library's
frames: revisions (filtered by family, status, registration dates and commit), the selected revision's containers,
its environment and secret names with values masked, the ECR images it refers to and its lineage (commit -> image
-> revision -> services), and the timeline figure for the family shown.

>>> browser = RevisionBrowser(RevisionLibrary(aws), sync=True)     # doctest: +SKIP
>>> browser                                # in a notebook: the panel
>>> browser.family.value = "web"; browser.filtered[["family", "revision", "status"]]
"""

from __future__ import annotations

import io
import threading
from datetime import date, timedelta
from typing import Any

import ipywidgets as widgets
import pandas as pd

from opskit.library import RevisionLibrary, SyncReport
from opskit.progress import ProgressEvent
from opskit.records import REVISION_STATUSES
from opskit.widgets.common import Background, FrameView, MessageArea, ProgressView, guard
from opskit.widgets.style import block, button, field, form, heading, short_arn, style_sheet

ALL = "(all)"
TABLE_COLUMNS = ["family", "revision", "status", "registered_at", "commit", "cpu", "memory", "container_count"]


class RevisionBrowser(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """Browse ``library`` (already synced, or press Sync; ``sync=True`` starts one at once), showing ``family``
    first when it has one.

    ``filtered`` is the revisions frame as the filters leave it (newest first); ``selected`` the chosen
    revision's ARN. The frames are read again after each sync, never on every filter change.
    """

    def __init__(
        self, library: RevisionLibrary, *, sync: bool = False, family: str | None = None, max_rows: int = 200
    ) -> None:
        self.library = library
        self._wanted_family = family
        self.filtered = pd.DataFrame(columns=TABLE_COLUMNS)
        self._revisions: pd.DataFrame | None = None
        self._containers = self._images = self._lineage = pd.DataFrame()
        self._timeline_key: tuple[Any, ...] | None = None
        self._quiet = False  # set while options are refilled, so observers do not redraw half-way

        self.sync_button = button("Sync", "info", "Read the account's revisions, images and services", "refresh")
        self.status = widgets.HTML("")
        self.family = widgets.Dropdown(
            options=[ALL], value=ALL, description="family", layout=widgets.Layout(width="auto")
        )
        self.revision_status = widgets.Dropdown(
            options=[ALL, *REVISION_STATUSES], value=ALL, description="status", layout=widgets.Layout(width="auto")
        )
        self.since = widgets.DatePicker(description="from", layout=widgets.Layout(width="auto"))
        self.until = widgets.DatePicker(description="until", layout=widgets.Layout(width="auto"))
        self.commit = field("commit", "", "SHA or its first digits", width="initial")
        self.revision = widgets.Dropdown(options=[], description="revision", layout=widgets.Layout(width="auto"))
        self.messages = MessageArea()
        self.progress = ProgressView()
        self.table = FrameView(max_rows=max_rows, empty="(no revision matches the filters)")
        self.containers = FrameView()
        self.environment = FrameView(empty="(no environment variables or secrets)")
        self.images = FrameView(empty="(no ECR image of this account found for it)")
        self.lineage = FrameView(empty="(never deployed, as far as the history shows)")
        self.timeline = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.work = Background(self.messages, self._busy)
        self._timeline_lock = threading.Lock()

        self.sync_button.on_click(lambda _: self.sync())
        for control in (self.family, self.revision_status, self.since, self.until, self.commit):
            control.observe(self._filters_changed, names="value")
        self.revision.observe(self._revision_changed, names="value")

        super().__init__(
            [
                style_sheet(),
                widgets.HBox(
                    [self.sync_button, self.status], layout=widgets.Layout(grid_gap="8px", align_items="center")
                ),
                self.messages,
                self.progress,
                heading("Revisions"),
                form([self.family, self.revision_status, self.since, self.until, self.commit], min_width="200px"),
                self.table,
                heading("One revision"),
                form([self.revision], min_width="480px"),
                self.containers,
                self.environment,
                self.images,
                self.lineage,
                heading("Release timeline"),
                self.timeline,
            ],
            layout=widgets.Layout(width="100%", grid_gap="4px"),
        )
        self.add_class("opskit-revision-browser")
        if sync:
            self.sync()
        else:  # what the cache holds already (opening it may ask AWS which account this is)
            self.work.start("reading the library", self.refresh)

    # -- syncing and reading the library ------------------------------------------------------------------------------
    def sync(self, *, refresh: bool = False) -> bool:
        """Bring the library up to date in the background, then show it again; False if work is running."""
        self.progress.reset("Syncing the revision library")
        self.messages.info("syncing: listing revisions, images and services ...")

        def job() -> SyncReport:
            self.progress(ProgressEvent("sync", "started", "listing revisions, images and services"))
            report = self.library.sync(refresh=refresh, report=self.progress)
            self.refresh()
            return report

        return self.work.start("the sync", job, lambda report: self.messages.success(report.summary()))

    def refresh(self) -> None:
        """Read the library's frames again (no AWS call: the cache) and redraw everything."""
        with self.work.drawing:
            self._redraw()

    def _redraw(self) -> None:
        revisions = self.library.revisions().sort_values(["registered_at", "family"], ascending=False)
        self._containers = self.library.containers()
        self._images = self.library.images()
        self._lineage = self.library.lineage()
        self._revisions = revisions.reset_index(drop=True)
        families = sorted(str(f) for f in revisions["family"].dropna().unique())
        self._quiet = True
        try:
            wanted = self._wanted_family if self.family.value == ALL else self.family.value
            keep = wanted if wanted in families else ALL
            self._wanted_family = None
            self.family.options = [ALL, *families]
            self.family.value = keep
        finally:
            self._quiet = False
        self.status.value = block(f"{len(revisions)} revisions of {len(families)} families in the library")
        self._timeline_key = None
        self._apply_filters()

    def wait(self, timeout: float | None = None) -> None:
        """Block until a sync running in the background ends (TimeoutError after ``timeout`` seconds)."""
        self.work.wait(timeout)

    # -- filters ------------------------------------------------------------------------------------------------------
    def _filters_changed(self, _: Any) -> None:
        with self.work.drawing:
            if not self._quiet:
                guard(self.messages, self._apply_filters)

    def _apply_filters(self) -> None:
        if self._revisions is None:
            return
        frame = self._revisions
        if self.family.value != ALL:
            frame = frame[frame["family"] == self.family.value]
        if self.revision_status.value != ALL:
            frame = frame[frame["status"] == self.revision_status.value]
        if self.since.value is not None:
            frame = frame[frame["registered_at"] >= _utc(self.since.value)]
        if self.until.value is not None:
            frame = frame[frame["registered_at"] < _utc(self.until.value + timedelta(days=1))]
        wanted = self.commit.value.strip().lower()
        if wanted:
            frame = frame[[_same_commit(c, wanted) for c in frame["commit"]]]
        self.filtered = frame.reset_index(drop=True)
        shown = frame[TABLE_COLUMNS]
        self.table.show(shown, caption=f"{len(frame)} of {len(self._revisions)} revisions, newest first")
        self._fill_revisions()
        self._draw_timeline()

    def _fill_revisions(self) -> None:
        head = self.filtered.head(self.table.max_rows)
        options = [
            (f"{f}:{r}  {s}  {t:%Y-%m-%d}  {c if isinstance(c, str) else '-'}", arn)
            for f, r, s, t, c, arn in zip(
                head["family"],
                head["revision"],
                head["status"],
                head["registered_at"],
                head["commit"],
                head["arn"],
                strict=True,
            )
        ]
        keep = self.revision.value if self.revision.value in {arn for _, arn in options} else None
        self._quiet = True
        try:
            self.revision.options = options
            self.revision.value = keep or (options[0][1] if options else None)
        finally:
            self._quiet = False
        self._show_revision()

    # -- one revision -------------------------------------------------------------------------------------------------
    @property
    def selected(self) -> str | None:
        value = self.revision.value
        return str(value) if value else None

    def select(self, revision: str) -> None:
        """Show ``revision`` (``family:number`` or an ARN) among the filtered ones."""
        for _, arn in self.revision.options:
            if arn == revision or short_arn(arn) == revision:
                self.revision.value = arn
                return
        self.messages.warning(f"{revision} is not among the revisions the filters show: widen the filters")

    def _revision_changed(self, _: Any) -> None:
        with self.work.drawing:
            if not self._quiet:
                guard(self.messages, self._show_revision)

    def _show_revision(self) -> None:
        arn = self.selected
        if arn is None:
            for view in (self.containers, self.environment, self.images, self.lineage):
                view.clear()
            return
        name = short_arn(arn)
        parts = self._containers[self._containers["arn"] == arn]
        self.containers.show(
            parts, ["name", "image", "essential", "environment_names", "secret_names"], caption=f"Containers of {name}"
        )
        self.environment.show(_environment(self.library, arn), caption=f"Environment of {name} (values masked)")
        lineage = self._lineage[self._lineage["task_definition"] == arn]
        digests = set(lineage["image_digest"].dropna())
        images = self._images[self._images["digest"].isin(digests)] if digests else self._images.iloc[0:0]
        self.images.show(
            images,
            ["repository", "digest", "tags", "pushed_at", "size_bytes", "scan_status", "services"],
            caption=f"ECR images {name} refers to",
        )
        deployed = lineage[lineage["cluster"].notna()]
        self.lineage.show(
            deployed,
            [
                "commit",
                "tag",
                "cluster",
                "service",
                "first_deployed_at",
                "last_deployed_at",
                "deployment_count",
                "completed",
                "is_current",
                "is_rollback_target",
            ],
            caption=f"Lineage of {name}: commit -> image -> revision -> services",
        )

    # -- timeline -----------------------------------------------------------------------------------------------------
    def _draw_timeline(self) -> None:
        family = None if self.family.value == ALL else self.family.value
        key = (family, self.since.value)
        if key == self._timeline_key:
            return
        self._timeline_key = key
        with self._timeline_lock:
            figure = self.library.timeline(family=family, since=self.since.value)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=80)
            self.timeline.value = buffer.getvalue()

    def _busy(self, busy: bool) -> None:
        self.sync_button.disabled = busy


def _utc(day: date) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize("UTC")


def _same_commit(commit: Any, wanted: str) -> bool:
    """The revision's commit (often 12 digits) and the one asked for (any length from 1) name the same commit."""
    if not isinstance(commit, str) or not commit:
        return False
    commit = commit.lower()
    return commit.startswith(wanted) or (len(commit) >= 7 and wanted.startswith(commit))


def _environment(library: RevisionLibrary, arn: str) -> pd.DataFrame:
    """Each container's variables and secrets by name, their values masked (the library masks them)."""
    body = library.revision_body(arn)["taskDefinition"]
    rows = []
    for container in body.get("containerDefinitions") or []:
        for variable in container.get("environment") or []:
            rows.append((container.get("name"), "variable", variable.get("name"), variable.get("value")))
        for secret in container.get("secrets") or []:
            rows.append((container.get("name"), "secret", secret.get("name"), secret.get("valueFrom")))
    return pd.DataFrame(rows, columns=["container", "kind", "name", "value"])


__all__ = ["RevisionBrowser"]
