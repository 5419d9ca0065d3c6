"""ReleasePanel driven headless against the demo sandbox: plan, Build & Release, roll back, and user errors.

Releases build the demo app (FROM scratch) on the real Docker engine and push it to the sandbox's registry.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opskit.sandbox import Sandbox
from opskit.widgets import ReleasePanel, session
from tests.widgets.conftest import WAIT

pytestmark = [pytest.mark.docker, pytest.mark.registry]


FROZEN = 1e-9  # a sandbox time scale at which no rollout moves while a test looks


def until(check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait for what the panel's background work shows; give up after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"still not so after {timeout:.0f} s")
        threading.Event().wait(0.05)


def panel_for(demo: Sandbox, app: Path, **fields: str) -> ReleasePanel:
    options = {"cluster": "demo", "service": "web", **fields}
    return ReleasePanel(demo.aws(), path=app, poll_interval=0.2, timeout=WAIT, **options)


def test_plan_shows_the_steps_and_the_diff_before_anything_changes(demo: Sandbox, demo_app: Path) -> None:
    panel = panel_for(demo, demo_app)
    assert panel.release_button.disabled, "nothing to release before a plan"
    panel.plan_button.click()
    panel.wait(WAIT)
    assert panel.messages.kind == "info", panel.messages.text
    assert panel.steps.frame is not None
    assert panel.steps.frame[["step", "action"]].values.tolist() == [
        ["build", "run"],
        ["push", "run"],
        ["register", "run"],
        ["update", "run"],
        ["wait", "run"],
    ]
    plan = panel.release_plan
    assert plan is not None and plan.options.path == demo_app
    assert f"Release {plan.tag}</b>" in panel.summary.value and "live revision web:" in panel.summary.value
    assert f"web:{plan.tag}&quot;,</span>" in panel.diff.value  # the image line, added
    assert not panel.release_button.disabled
    panel.service.value = "api"  # another target: the plan no longer applies
    assert panel.release_button.disabled and panel.release_plan is None
    assert panel.messages.text == "the target changed: plan again"


def test_release_then_roll_back_with_progress_as_it_comes(demo: Sandbox, demo_app: Path) -> None:
    session.change_demo_app(demo_app)
    panel = panel_for(demo, demo_app)
    panel.plan()
    panel.wait(WAIT)
    live_before = panel.release_plan.live_arn if panel.release_plan else None

    # The sandbox's time stands (almost) still, so the rollout cannot finish until the test lets it: what the
    # panel shows in between is the release as it runs in the background.
    scale = demo.clock.time_scale
    demo.clock.time_scale = FROZEN
    try:
        panel.release_button.click()
        assert panel.work.busy and panel.record is None, "the click came back before the release ended"
        assert panel.plan_button.disabled and panel.release_button.disabled and panel.rollback_plan_button.disabled
        until(lambda: "wait" in panel.progress.stages or not panel.work.busy)
        stages = {name: row.state for name, row in panel.progress.stages.items()}
        following = stages.pop("wait", None)
        assert stages == dict.fromkeys(("build", "tag", "push", "register", "update"), "done"), panel.messages.text
        assert following in ("started", "running") and panel.work.busy and panel.record is None
        assert panel.plan() is False, "the panel answers while the release runs"
        assert panel.messages.text == "the release is still running: wait for it to finish"
    finally:
        demo.clock.time_scale = scale
    panel.wait(WAIT)

    record = panel.record
    assert record is not None and record.outcome == "COMPLETED", panel.messages.text
    assert panel.messages.kind == "success" and panel.messages.text.startswith("release to web:")
    assert {name: row.state for name, row in panel.progress.stages.items()} == dict.fromkeys(
        ("build", "tag", "push", "register", "update", "wait"), "done"
    )
    assert any(line.startswith("build | Step 1/") for line in panel.progress.log_lines)
    assert any(line.startswith("wait | (service web) has reached a steady state") for line in panel.progress.log_lines)
    assert panel.outcome.frame is not None
    fields = dict(panel.outcome.frame.values.tolist())
    assert fields["outcome"] == "COMPLETED" and fields["revision"] == record.revision_arn.rsplit("/", 1)[-1]
    assert fields["stages"].startswith("build ")
    assert panel.release_button.disabled, "what ran is no longer what the plan described"

    panel.rollback_plan_button.click()
    panel.wait(WAIT)
    plan = panel.rollback_plan
    assert plan is not None and plan.target_arn == live_before and plan.live_arn == record.revision_arn
    assert panel.steps.frame is not None and panel.steps.frame["in_ecr"].tolist() == [True]
    assert "last ran to completion" in panel.summary.value
    panel.rollback_button.click()
    panel.wait(WAIT)
    assert panel.record is not None and panel.record.kind == "rollback" and panel.record.outcome == "COMPLETED"
    assert panel.messages.text.startswith(f"rollback to {live_before.rsplit('/', 1)[-1]}: COMPLETED")


def test_a_release_the_circuit_breaker_rolls_back_is_an_error_with_the_reason(demo: Sandbox, tmp_path: Path) -> None:
    # The demo app without the sandbox's label: its tasks really start on Docker, and fail (there is no program).
    app = tmp_path / "broken"
    app.mkdir()
    (app / "Dockerfile").write_text(
        session.DEMO_APP_DOCKERFILE.replace("LABEL org.opskit.sandbox.simulated=true\n", "")
    )
    subprocess.run(["git", "-C", str(app), "init", "-q"], check=True)
    session.change_demo_app(app)
    panel = panel_for(demo, app)
    panel.plan()
    panel.wait(WAIT)
    panel.release()
    panel.wait(WAIT)
    assert panel.record is not None and panel.record.outcome == "ROLLED_BACK"
    assert panel.messages.kind == "error"
    assert "ROLLED_BACK: " in panel.messages.text and "circuit breaker: " in panel.messages.text
    assert "ECS rolled back to web:30" in panel.messages.text
    assert panel.progress.stages["wait"].state == "failed"
    assert any("rolling back" in line for line in panel.progress.log_lines)
    # why, in the words of the tasks that failed: the container that could not start, and the table of it all
    assert panel.record.cause.startswith("container web did not run: CannotStartContainerError"), panel.record.cause
    assert f"Cause: {panel.record.cause}" in panel.messages.text
    assert "Why it failed" in panel.failure.value and "CannotStartContainerError" in panel.failure.value


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"service": "nope"}, "service 'nope' not found in cluster 'demo'"),
        ({"cluster": " "}, "'cluster' is empty: pass the name of your ECS cluster"),
        ({"path": "/"}, "/ is not inside a git checkout"),
        ({"containers": "sidecar"}, "container 'sidecar' is not in web:"),
    ],
)
def test_user_errors_show_as_one_line_in_the_panel(
    demo: Sandbox, demo_app: Path, fields: dict[str, str], message: str
) -> None:
    panel = panel_for(demo, demo_app, **{k: v for k, v in fields.items() if k != "path"})
    if "path" in fields:
        panel.path.value = fields["path"]
    panel.plan_button.click()
    panel.wait(WAIT)
    assert panel.messages.kind == "error"
    assert panel.messages.text.startswith(message), panel.messages.text
    assert "\n" not in panel.messages.text and "Traceback" not in panel.messages.value
    assert panel.release_button.disabled and not panel.plan_button.disabled


def test_buttons_that_need_a_plan_say_so(demo: Sandbox, demo_app: Path) -> None:
    panel = panel_for(demo, demo_app)
    assert panel.release() is False
    assert panel.messages.text == "plan the release first: the plan shows what Build & Release will do"
    assert panel.rollback() is False
    assert panel.messages.kind == "warning"
