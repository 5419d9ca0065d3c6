"""ReleasePanel: plan a release, read the diff, Build & Release with live progress, and roll back with its own plan.

A thin view over :mod:`opskit.release`: it builds a :class:`~opskit.release.ReleaseOptions` from its fields,
shows :func:`~opskit.release.plan_release`'s plan and diff, and runs :func:`~opskit.release.apply_release` in
the background with a :class:`~opskit.widgets.common.ProgressView` as its progress reporter. Rollback is the
same with :func:`~opskit.release.plan_rollback` and :func:`~opskit.release.apply_rollback`.

When the deployment waits at a PAUSE hook, the panel shows the hook, the time left before its timeout acts, and
**Approve** and **Roll back** buttons (ContinueServiceDeployment CONTINUE or ROLLBACK). A failed release shows its
cause (the failing container's exit code and log line) and the record's failure table.

>>> panel = ReleasePanel(aws, cluster="demo", service="web", path="~/src/web")   # doctest: +SKIP
>>> panel                     # in a notebook: the panel; "Plan release", then "Build & Release"
>>> panel.plan(); panel.wait()                # the same from code
>>> panel.release(); panel.wait(); panel.record.outcome
'COMPLETED'
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd

from opskit.aws import Aws
from opskit.errors import OpskitError
from opskit.progress import ProgressEvent
from opskit.release import (
    ReleaseOptions,
    ReleasePlan,
    ReleaseRecord,
    RollbackPlan,
    apply_release,
    apply_rollback,
    plan_release,
    plan_rollback,
)
from opskit.release.rollout import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, Pause
from opskit.widgets.common import Background, FrameView, MessageArea, ProgressView, diff_html
from opskit.widgets.style import block, button, checkbox, field, form, heading, short_arn, style_sheet

# The command's options that the panel's errors may mention, and the control each is here.
PANEL_FIELDS = {
    "--cluster": "cluster",
    "--service": "service",
    "--container": "containers",
    "--repository": "repository",
    "--path": "git checkout",
    "--allow-dirty": "allow uncommitted changes",
    "--to": "roll back to",
}


class ReleasePanel(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """Release the commit checked out at ``path`` to ``cluster``/``service``, and roll it back.

    ``containers`` (comma-separated in the panel) and ``repository`` are optional, as on the command line.
    ``poll_interval`` and ``timeout`` are apply's (seconds between DescribeServices polls, and how long to follow
    the rollout). The last plans and record are kept: ``release_plan``, ``rollback_plan``, ``record``.
    """

    def __init__(
        self,
        aws: Aws,
        *,
        cluster: str = "",
        service: str = "",
        containers: str | tuple[str, ...] = "",
        repository: str | None = None,
        path: str | Path = ".",
        allow_dirty: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.aws = aws
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.release_plan: ReleasePlan | None = None
        self.rollback_plan: RollbackPlan | None = None
        self.record: ReleaseRecord | None = None
        self.pause: Pause | None = None  # the PAUSE hook the rollout waits at, until it is answered
        self._pause_lock = threading.Lock()

        self.cluster = field("cluster", cluster, "ECS cluster")
        self.service = field("service", service, "ECS service")
        self.containers = field(
            "containers",
            containers if isinstance(containers, str) else ", ".join(containers),
            "default: the one using the repository",
        )
        self.repository = field("repository", repository or "", "default: the container's")
        self.path = field("git checkout", str(path), "folder with the Dockerfile")
        self.allow_dirty = checkbox("allow uncommitted changes", allow_dirty)
        self.rollback_to = field("roll back to", "", "default: what it last ran to completion")

        self.plan_button = button("Plan release", "info", "Read git, ECR and ECS and show what a release would do")
        self.release_button = button("Build & Release", "success", "Carry out the plan shown", "rocket")
        self.rollback_plan_button = button("Plan rollback", "", "Show what a rollback would go back to")
        self.rollback_button = button("Roll back", "danger", "Carry out the rollback plan shown", "undo")
        self.release_button.disabled = self.rollback_button.disabled = True
        self.approve_button = button("Approve", "success", "Continue the deployment past the PAUSE hook", "check")
        self.reject_button = button("Roll back", "danger", "Roll the deployment back at the PAUSE hook", "undo")
        self.pause_details = widgets.HTML("")
        self.pause_box = widgets.VBox(
            [
                self.pause_details,
                widgets.HBox([self.approve_button, self.reject_button], layout=widgets.Layout(grid_gap="8px")),
            ],
            layout=widgets.Layout(display="none"),
        )
        self.pause_box.add_class("opskit-pause")

        self.messages = MessageArea(fields=PANEL_FIELDS)
        self.summary = widgets.HTML("")
        self.steps = FrameView(empty="(no plan yet)")
        self.diff = widgets.HTML("")
        self.progress = ProgressView()
        self.outcome = FrameView()
        self.failure = FrameView()
        self.work = Background(self.messages, self._busy)

        self.plan_button.on_click(lambda _: self.plan())
        self.release_button.on_click(lambda _: self.release())
        self.rollback_plan_button.on_click(lambda _: self.plan_rollback())
        self.rollback_button.on_click(lambda _: self.rollback())
        self.approve_button.on_click(lambda _: self.answer("CONTINUE"))
        self.reject_button.on_click(lambda _: self.answer("ROLLBACK"))
        for box in (self.cluster, self.service, self.containers, self.repository, self.path, self.allow_dirty):
            box.observe(self._target_changed, names="value")
        self.rollback_to.observe(self._rollback_target_changed, names="value")

        super().__init__(
            [
                style_sheet(),
                heading("Release target"),
                form([self.cluster, self.service, self.containers, self.repository]),
                self.path,  # a row of its own: paths are long
                self.allow_dirty,
                widgets.HBox([self.plan_button, self.release_button], layout=widgets.Layout(grid_gap="8px")),
                self.messages,
                self.summary,
                self.steps,
                self.diff,
                self.pause_box,
                self.progress,
                self.outcome,
                self.failure,
                heading("Rollback"),
                form([self.rollback_to]),
                widgets.HBox([self.rollback_plan_button, self.rollback_button], layout=widgets.Layout(grid_gap="8px")),
            ],
            layout=widgets.Layout(width="100%", grid_gap="4px"),
        )
        self.add_class("opskit-release-panel")

    # -- what the buttons do ------------------------------------------------------------------------------------------
    def options(self) -> ReleaseOptions:
        """The fields as release options (raises a one-line ConfigError for an empty cluster or service)."""
        containers = tuple(c.strip() for c in self.containers.value.split(",") if c.strip())
        return ReleaseOptions(
            cluster=self.cluster.value.strip(),
            service=self.service.value.strip(),
            containers=containers,
            repository=self.repository.value.strip() or None,
            path=Path(self.path.value.strip() or ".").expanduser(),
            allow_dirty=self.allow_dirty.value,
        )

    def plan(self) -> bool:
        """Plan a release of the fields' target in the background; False if other work is running."""
        self.messages.info("planning: reading git, ECR and ECS ...")

        def job() -> ReleasePlan:
            return plan_release(self.aws, self.options())

        return self.work.start("planning the release", job, self._show_release_plan)

    def release(self) -> bool:
        """Carry out the plan shown, in the background; progress shows stage by stage."""
        plan = self.release_plan
        if plan is None:
            self.messages.warning("plan the release first: the plan shows what Build & Release will do")
            return False
        self.progress.reset(f"Releasing {plan.tag} to {plan.options.cluster}/{plan.options.service}")
        self._clear_outcome()
        self.messages.info(f"releasing {plan.tag}: build, push, register, update, then following the rollout ...")

        def job() -> ReleaseRecord:
            return apply_release(
                plan,
                self.aws,
                progress=self._progress,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                on_pause=self._paused,
            )

        return self.work.start("the release", job, self._show_record, self._stopped)

    def plan_rollback(self) -> bool:
        """Plan a rollback of the fields' service (to ``roll back to``, or what it last ran to completion)."""
        self.messages.info("planning the rollback: reading the service's deployment history ...")
        cluster, service = self.cluster.value.strip(), self.service.value.strip()
        to = self.rollback_to.value.strip() or None

        def job() -> RollbackPlan:
            return plan_rollback(self.aws, cluster, service, to=to)

        return self.work.start("planning the rollback", job, self._show_rollback_plan)

    def rollback(self) -> bool:
        plan = self.rollback_plan
        if plan is None:
            self.messages.warning("plan the rollback first: the plan shows where Roll back goes")
            return False
        self.progress.reset(f"Rolling {plan.cluster}/{plan.service} back to {short_arn(plan.target_arn)}")
        self._clear_outcome()
        self.messages.info(f"rolling back to {short_arn(plan.target_arn)} and following the rollout ...")

        def job() -> ReleaseRecord:
            return apply_rollback(
                plan,
                self.aws,
                progress=self._progress,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                on_pause=self._paused,
            )

        return self.work.start("the rollback", job, self._show_record, self._stopped)

    def answer(self, action: str) -> bool:
        """Answer the PAUSE hook the rollout waits at: CONTINUE (Approve) or ROLLBACK (Roll back). False when no hook
        waits, or ECS refused (the message says why: its timeout may have acted first)."""
        with self._pause_lock:
            pause, self.pause = self.pause, None
        if pause is None:
            self.messages.warning("no PAUSE hook awaits an answer: the deployment went on without one")
            return False
        self._show_pause(None)
        try:
            pause.answer(action)
        except OpskitError as exc:  # the hook's timeout acted first, or the deployment ended meanwhile
            self.messages.failure(exc)
            return False
        said = "approved: the deployment goes on" if action == "CONTINUE" else "rolled back at the hook"
        self.messages.info(f"PAUSE hook {pause.hook_id} {said}; following the rollout ...")
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until the panel's background work ends (TimeoutError after ``timeout`` seconds)."""
        self.work.wait(timeout)

    # -- the rollout at a PAUSE hook ----------------------------------------------------------------------------------
    def _paused(self, pause: Pause) -> None:
        """Asked by the rollout (in the background) about a PAUSE hook: show it and its buttons, answer later."""
        with self._pause_lock:
            self.pause = pause
        self._show_pause(pause)
        self.messages.warning(f"{pause.describe()}: Approve or Roll back")

    def _progress(self, event: ProgressEvent) -> None:
        """The progress view, and the time left at a waiting PAUSE hook as the rollout is polled."""
        self.progress(event)
        if event.stage == "wait" and event.state == "running":
            pause = self.pause
            if pause is not None:
                self._show_pause(pause)

    def _show_pause(self, pause: Pause | None) -> None:
        if pause is None:
            self.pause_box.layout.display = "none"
            self.pause_details.value = ""
            return
        left = pause.seconds_left()
        when = (
            f"{html.escape(pause.timeout_action)} in {_duration(left)} unless answered"
            if left is not None
            else "no timeout: it waits for an answer"
        )
        target = pause.hook.get("targetArn")
        rows = [
            ("hook", pause.hook_id),
            ("service", f"{pause.rollout.cluster}/{pause.rollout.service}"),
            ("deployment", short_arn(pause.rollout.arn)),
            ("status", str(pause.hook.get("status"))),
            ("timeout", when),
            *([("target", str(target))] if target else []),
        ]
        cells = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v if k == 'timeout' else html.escape(v)}</td></tr>" for k, v in rows
        )
        self.pause_details.value = block(
            "<b>The deployment waits at a PAUSE hook</b>: check the new revision (its test traffic), then approve or "
            f"roll back.<table class='opskit-table'>{cells}</table>"
        )
        self.pause_box.layout.display = "flex"

    # -- showing results ----------------------------------------------------------------------------------------------
    def _show_release_plan(self, plan: ReleasePlan) -> None:
        self.release_plan, self.rollback_plan = plan, None
        dirty = " <b>with uncommitted changes</b>" if plan.commit.dirty else ""
        self.summary.value = block(
            f"<b>Release {html.escape(plan.tag)}</b> (commit {html.escape(plan.commit.sha)}{dirty}) "
            f"to {html.escape(plan.options.cluster)}/{html.escape(plan.options.service)}: "
            f"image <code>{html.escape(plan.image)}</code> for {html.escape(', '.join(plan.containers))}; "
            f"live revision {html.escape(short_arn(plan.live_arn))}"
        )
        self.steps.show(plan.to_frame(), caption="The plan, step by step")
        self.diff.value = block(
            f"<div class='caption'>The live revision against the new one</div><div class='scroll'>"
            f"{diff_html(plan.diff)}</div>"
        )
        if plan.build_unavailable is not None:
            problem = plan.build_unavailable
            self.messages.warning(problem.in_notebook or self.messages.in_panel_words(str(problem)))
            self.release_button.disabled = True  # nothing to release until the image can be built (or is in ECR)
            return
        if plan.already_live:
            self.messages.success(f"{plan.options.service} already runs this release: Build & Release changes nothing")
        elif plan.warnings:
            self.messages.warning("; ".join(plan.warnings))
        else:
            self.messages.info("read the plan and the diff; Build & Release carries them out")
        self.release_button.disabled = False

    def _show_rollback_plan(self, plan: RollbackPlan) -> None:
        self.rollback_plan = plan
        self.summary.value = block(
            f"<b>Roll {html.escape(plan.cluster)}/{html.escape(plan.service)} back</b> from "
            f"{html.escape(short_arn(plan.live_arn))} to {html.escape(short_arn(plan.target_arn))} "
            f"({html.escape(plan.chosen_by)}); its images, checked in ECR:"
        )
        self.steps.show(plan.to_frame(), caption="The rollback's images")
        self.diff.value = ""
        self.messages.info("read the rollback plan; Roll back carries it out")
        self.rollback_button.disabled = False

    def _clear_outcome(self) -> None:
        self.outcome.clear()
        self.failure.clear()

    def _show_record(self, record: ReleaseRecord) -> None:
        self.record = record
        with self._pause_lock:
            self.pause = None
        self._show_pause(None)
        stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in record.stages.items())
        fields = {
            "outcome": record.outcome,
            "reason": record.reason,
            **({"cause": record.cause} if record.cause else {}),
            "revision": short_arn(record.revision_arn),
            "image": record.image,
            "digest": record.digest,
            "commit": record.commit,
            "deployment": record.deployment_id,
            "started at": _moment(record.started_at),
            "finished at": _moment(record.finished_at),
            "stages": stages,
        }
        frame = pd.DataFrame(list(fields.items()), columns=["field", "value"])
        self.outcome.show(frame, caption=f"The {record.kind}'s record (also in opskit's journal)")
        what = f"{record.kind} to {short_arn(record.revision_arn)}"
        if record.ok:
            self.messages.success(f"{what}: {record.outcome}: {record.reason}")
        else:
            cause = f" Cause: {record.cause}" if record.cause else ""
            self.messages.error(f"{what}: {record.outcome}: {record.reason}{cause}")
        if record.failure is not None:
            self.failure.show(record.failure_frame(), caption="Why it failed (record.failure_frame())")
        # What ran is no longer what the plans describe: plan again before acting again.
        self.release_plan = self.rollback_plan = None

    def _stopped(self, _: Exception) -> None:
        """A release or rollback refused before any stage began: no heading over an empty progress area."""
        if not self.progress.stages:
            self.progress.reset()

    # -- keeping the buttons honest -----------------------------------------------------------------------------------
    def _busy(self, busy: bool) -> None:
        for control in (self.plan_button, self.rollback_plan_button):
            control.disabled = busy
        self.release_button.disabled = (
            busy or self.release_plan is None or self.release_plan.build_unavailable is not None
        )
        self.rollback_button.disabled = busy or self.rollback_plan is None

    def _target_changed(self, _: Any) -> None:
        # A plan is for the target it was made for; a changed field needs a new one.
        if self.release_plan is not None or self.rollback_plan is not None:
            self.release_plan = self.rollback_plan = None
            self.release_button.disabled = self.rollback_button.disabled = True
            self.messages.info("the target changed: plan again")

    def _rollback_target_changed(self, _: Any) -> None:
        if self.rollback_plan is not None:
            self.rollback_plan = None
            self.rollback_button.disabled = True


def _duration(seconds: float) -> str:
    """``2 min 05 s``, ``40 s``"""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _moment(iso: str | None) -> str:
    """An ISO timestamp to the second, as people read it."""
    return f"{iso[:19].replace('T', ' ')} UTC" if iso else "-"


__all__ = ["ReleasePanel"]
