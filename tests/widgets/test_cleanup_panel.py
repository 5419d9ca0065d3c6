"""CleanupPanel driven headless against the demo sandbox: plan with reasons, confirm, apply, outcome."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox
from opskit.widgets import CleanupPanel
from tests.widgets.conftest import WAIT


@pytest.fixture
def library(demo: Sandbox) -> Iterator[RevisionLibrary]:
    with RevisionLibrary(demo.aws(), cache_path=":memory:", rate_scale=60) as library:
        yield library


def panel_for(demo: Sandbox, library: RevisionLibrary, **options: object) -> CleanupPanel:
    return CleanupPanel(library, clock=demo.clock.now, rate_scale=60, **options)  # type: ignore[arg-type]


def test_nothing_happens_without_a_plan_and_a_confirmation(demo: Sandbox, library: RevisionLibrary) -> None:
    panel = panel_for(demo, library, families=["web"], keep=3, keep_days=0, rollback_depth=1)
    assert panel.apply_button.disabled and panel.confirm.disabled
    assert panel.apply() is False and panel.messages.text.startswith("plan the cleanup first")
    panel.plan_button.click()
    panel.wait(WAIT)
    plan = panel.cleanup_plan
    assert plan is not None and not plan.empty
    assert panel.messages.text == "read the plan; tick the confirmation, then Apply carries it out"
    assert panel.summary.frame is not None and panel.summary.frame["family"].tolist() == ["web"]
    changes = panel.changes.frame
    assert changes is not None and len(changes) == len(plan.to_deregister) + len(plan.to_delete) > 0
    assert set(changes["fate"]) <= {"deregister", "delete", "deregister+delete"}
    assert changes["reason"].notna().all()
    kept = panel.kept.frame
    assert kept is not None and kept["reason"].str.contains("rollback|deployment|newest").any()
    assert not panel.confirm.disabled and panel.apply_button.disabled, "Apply waits for the confirmation"
    assert "DeregisterTaskDefinition" in panel.confirm.description

    panel.apply_button.click()  # not confirmed: nothing happens
    assert panel.messages.text == "read the plan, then tick the confirmation to apply it" and panel.result is None
    panel.keep.value = 4  # another option: the plan no longer applies
    assert panel.cleanup_plan is None and panel.confirm.disabled and panel.messages.text.startswith("the options")


def test_apply_shows_progress_and_each_revisions_outcome(demo: Sandbox, library: RevisionLibrary) -> None:
    panel = panel_for(demo, library, keep=3, keep_days=0, rollback_depth=1, images=True)
    assert not panel.untagged_days.disabled
    panel.plan()
    panel.wait(WAIT)
    plan = panel.cleanup_plan
    assert plan is not None and plan.images_to_delete
    assert panel.image_plan.frame is not None and len(panel.image_plan.frame) == len(plan.images_to_delete)
    panel.confirm.value = True
    assert not panel.apply_button.disabled
    panel.apply_button.click()
    panel.wait(WAIT)
    result = panel.result
    assert result is not None and result.ok, panel.messages.text
    assert panel.messages.kind == "success" and panel.messages.text.startswith("cleanup done: revisions: deleted")
    assert {name: row.state for name, row in panel.progress.stages.items()} == {"revisions": "done", "images": "done"}
    assert panel.progress.bar.value == 1.0
    outcome = panel.outcome.frame
    assert outcome is not None and set(outcome["outcome"]) <= {"deregistered", "deleted", "delete_in_progress"}
    assert len(outcome) == len(plan.to_deregister) + len(plan.to_delete)
    assert panel.image_outcome.frame is not None and set(panel.image_outcome.frame["outcome"]) == {"deleted"}
    assert panel.cleanup_plan is None and not panel.confirm.value and panel.apply_button.disabled

    services = {arn.rsplit("/", 1)[-1] for arn in library.services()["task_definition"]}
    left = library.revisions()
    assert services <= {f"{f}:{r}" for f, r in zip(left["family"], left["revision"], strict=True)}


def test_a_family_that_does_not_exist_is_one_line(demo: Sandbox, library: RevisionLibrary) -> None:
    panel = panel_for(demo, library, families=["nope"])
    panel.plan()
    panel.wait(WAIT)
    assert panel.messages.kind == "error" and panel.messages.text.startswith("no task-definition family 'nope'")
    panel.families.value = "Not A Family!"
    panel.plan()
    panel.wait(WAIT)
    assert panel.messages.kind == "error" and "is not a valid name" in panel.messages.text
