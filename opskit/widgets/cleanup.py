"""CleanupPanel: choose what to keep, read the dry-run plan with its reasons and counts, confirm, apply, read the
outcome.

A thin view over :mod:`opskit.cleanup`: Plan cleanup runs :func:`~opskit.cleanup.plan_cleanup` on the library
(synced first) in the background; Apply stays disabled until the plan has been read and the confirmation ticked,
then runs :func:`~opskit.cleanup.apply_cleanup` with a :class:`~opskit.widgets.common.ProgressView` (counts and an
estimate of the time left at ECS's rates) and shows every revision's (and image's) outcome.

>>> panel = CleanupPanel(RevisionLibrary(aws), keep=10, rollback_depth=3)     # doctest: +SKIP
>>> panel.plan(); panel.wait(); panel.cleanup_plan.describe()
>>> panel.confirm.value = True; panel.apply(); panel.wait(); panel.result.counts
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from opskit.cleanup import CleanupOptions, CleanupPlan, CleanupResult, apply_cleanup, plan_cleanup
from opskit.library import RevisionLibrary
from opskit.widgets.common import Background, FrameView, MessageArea, ProgressView
from opskit.widgets.style import button, checkbox, field, form, heading, style_sheet

PLAN_COLUMNS = ["family", "revision", "status", "fate", "reason", "registered_at"]
IMAGE_COLUMNS = ["repository", "digest", "tags", "pushed_at", "fate", "reason", "referenced_by"]
RESULT_COLUMNS = ["family", "revision", "fate", "outcome", "detail", "failure_reason", "status_after"]


def _number(kind: type[widgets.Widget], description: str, value: float, low: float, high: float) -> Any:
    return kind(
        value=value,
        min=low,
        max=high,
        description=description,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="auto"),
    )


class CleanupPanel(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """Clean up old revisions (and, ticked, ECR images) of ``library``'s account without breaking a rollback.

    The fields are :class:`~opskit.cleanup.CleanupOptions`' (their defaults are generous). ``clock`` gives "now"
    for ages (a sandbox's clock on a sandbox); ``rate_scale`` multiplies ECS's rates (a sandbox's time scale).
    ``cleanup_plan`` and ``result`` hold the last plan and outcome.
    """

    def __init__(
        self,
        library: RevisionLibrary,
        *,
        families: Sequence[str] = (),
        keep: int = 10,
        keep_days: float = 30,
        rollback_depth: int = 3,
        images: bool = False,
        clock: Callable[[], datetime] | None = None,
        rate_scale: float = 1.0,
        journal_dir: Path | None = None,
    ) -> None:
        self.library = library
        self.clock = clock
        self.rate_scale = rate_scale
        self.journal_dir = journal_dir
        self.cleanup_plan: CleanupPlan | None = None
        self.result: CleanupResult | None = None

        self.families = field("families", ", ".join(families), "every family", width="initial")
        self.keep = _number(widgets.BoundedIntText, "keep newest", keep, 1, 1_000_000)
        self.keep_days = _number(widgets.BoundedFloatText, "keep if younger (days)", keep_days, 0, 36_500)
        self.rollback_depth = _number(widgets.BoundedIntText, "rollback depth", rollback_depth, 1, 100)
        self.images = checkbox("clean up ECR images too", images)
        self.delete_deregistered = checkbox("also delete what this run deregisters (not only what already was)")
        self.untagged_days = _number(widgets.BoundedFloatText, "untagged images after (days)", 14, 0, 36_500)
        self.unreferenced_days = _number(widgets.BoundedFloatText, "unused images after (days)", 90, 0, 36_500)
        self.plan_button = button("Plan cleanup", "info", "Decide every revision's fate; change nothing", "list")
        self.confirm = checkbox("I have read the plan: apply it")
        self.apply_button = button("Apply", "danger", "Carry out the plan shown", "trash")
        self.confirm.disabled = self.apply_button.disabled = True

        self.messages = MessageArea()
        self.summary = FrameView()
        self.changes = FrameView(empty="(nothing to change: every revision is kept)")
        self.kept = FrameView()
        self.image_plan = FrameView(empty="(no image to delete)")
        self.progress = ProgressView()
        self.outcome = FrameView()
        self.image_outcome = FrameView()
        self.work = Background(self.messages, self._busy)

        self.plan_button.on_click(lambda _: self.plan())
        self.apply_button.on_click(lambda _: self.apply())
        self.confirm.observe(lambda _: self._busy(self.work.busy), names="value")
        self.images.observe(lambda _: self._image_fields(), names="value")
        self._image_fields()
        for control in self._option_fields():
            control.observe(self._options_changed, names="value")

        super().__init__(
            [
                style_sheet(),
                heading("What to keep"),
                form([self.families, self.keep, self.keep_days, self.rollback_depth], min_width="280px"),
                self.delete_deregistered,
                self.images,
                form([self.untagged_days, self.unreferenced_days], min_width="280px"),
                widgets.HBox([self.plan_button]),
                self.messages,
                self.summary,
                self.changes,
                self.image_plan,
                self.kept,
                heading("Apply"),
                widgets.HBox([self.confirm, self.apply_button], layout=widgets.Layout(align_items="center")),
                self.progress,
                self.outcome,
                self.image_outcome,
            ],
            layout=widgets.Layout(width="100%", grid_gap="4px"),
        )
        self.add_class("opskit-cleanup-panel")

    def options(self) -> CleanupOptions:
        """The fields as cleanup options (a one-line ConfigError for a value out of range)."""
        return CleanupOptions(
            families=tuple(f.strip() for f in self.families.value.split(",") if f.strip()),
            keep=int(self.keep.value),
            keep_days=float(self.keep_days.value),
            rollback_depth=int(self.rollback_depth.value),
            delete_deregistered=bool(self.delete_deregistered.value),
            images=bool(self.images.value),
            untagged_days=float(self.untagged_days.value),
            unreferenced_days=float(self.unreferenced_days.value),
        )

    def plan(self) -> bool:
        """Sync the library and plan the cleanup in the background (nothing changes); False if work is running."""
        self.messages.info("syncing the library and planning the cleanup ...")

        def job() -> CleanupPlan:
            now = self.clock() if self.clock else None
            return plan_cleanup(
                self.library, self.options(), now=now, journal_dir=self.journal_dir, rate_scale=self.rate_scale
            )

        return self.work.start("planning the cleanup", job, self._show_plan)

    def apply(self) -> bool:
        """Carry out the plan shown, once confirmed, in the background; False if it cannot start."""
        plan = self.cleanup_plan
        if plan is None:
            self.messages.warning("plan the cleanup first: the plan shows what Apply will do")
            return False
        if not self.confirm.value:
            self.messages.warning("read the plan, then tick the confirmation to apply it")
            return False
        self.progress.reset(f"Cleaning up: {plan.describe()}")
        self.outcome.clear()
        self.image_outcome.clear()
        self.messages.info("applying the cleanup, paced to ECS's rates ...")

        def job() -> CleanupResult:
            return apply_cleanup(
                plan, self.library.aws, progress=self.progress, journal_dir=self.journal_dir, rate_scale=self.rate_scale
            )

        return self.work.start("the cleanup", job, self._show_result)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the panel's background work ends (TimeoutError after ``timeout`` seconds)."""
        self.work.wait(timeout)

    # -- showing ------------------------------------------------------------------------------------------------------
    def _show_plan(self, plan: CleanupPlan) -> None:
        self.cleanup_plan, self.result = plan, None
        frame = plan.to_frame()
        acting = frame[frame["fate"] != "keep"]
        self.summary.show(plan.summary(), caption=f"The plan: {plan.describe()}")
        self.changes.show(acting, PLAN_COLUMNS, caption="Revisions that change, and why they may")
        self.kept.show(frame[frame["fate"] == "keep"], PLAN_COLUMNS, caption="Revisions kept, and why")
        if plan.options.images:
            images = plan.images_frame()
            self.image_plan.show(images[images["fate"] == "delete"], IMAGE_COLUMNS, caption="Images to delete")
        else:
            self.image_plan.clear()
        if plan.empty:
            self.messages.success("nothing to clean up: every revision (and image) is kept")
            self.confirm.value = False
            return
        if plan.resumed is not None:
            self.messages.warning(
                f"this is an interrupted run's plan ({plan.resumed.done} actions already done, journal "
                f"{plan.resumed.journal}): Apply finishes it"
            )
        else:
            self.messages.info("read the plan; tick the confirmation, then Apply carries it out")
        calls = ", ".join(f"{n} {name}" for name, n in plan.calls.items() if n)
        self.confirm.description = f"I have read the plan: apply it ({calls})"
        self.confirm.value = False

    def _show_result(self, result: CleanupResult) -> None:
        self.result = result
        frame = result.to_frame()
        self.outcome.show(frame[frame["outcome"] != "kept"], RESULT_COLUMNS, caption="What happened to each revision")
        if result.plan.options.images:
            images = result.images_frame()
            self.image_outcome.show(images[images["outcome"] != "kept"], caption="What happened to each image")
        text = result.describe()
        if result.ok:
            self.messages.success(f"cleanup done: {text}")
        else:
            self.messages.error(f"cleanup finished with failures or actions not reached: {text}; see the table")
        self.cleanup_plan = None  # done: plan again before another run
        self.confirm.value = False
        self.confirm.description = "I have read the plan: apply it"

    # -- keeping the controls honest ----------------------------------------------------------------------------------
    def _option_fields(self) -> list[widgets.Widget]:
        return [
            self.families,
            self.keep,
            self.keep_days,
            self.rollback_depth,
            self.images,
            self.delete_deregistered,
            self.untagged_days,
            self.unreferenced_days,
        ]

    def _busy(self, busy: bool) -> None:
        ready = self.cleanup_plan is not None and not self.cleanup_plan.empty
        self.plan_button.disabled = busy
        self.confirm.disabled = busy or not ready
        self.apply_button.disabled = busy or not ready or not self.confirm.value

    def _image_fields(self) -> None:
        self.untagged_days.disabled = self.unreferenced_days.disabled = not self.images.value

    def _options_changed(self, _: Any) -> None:
        if self.cleanup_plan is not None:
            self.cleanup_plan = None
            self.confirm.value = False
            self._busy(self.work.busy)
            self.messages.info("the options changed: plan again")


__all__ = ["CleanupPanel"]
