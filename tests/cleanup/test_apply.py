"""Applying cleanup plans on the sandbox: exactly the plan, paced to ECS's buckets (throttling on, time-scaled),
re-checked right before each action, DELETE_IN_PROGRESS reported, images consistent with the revisions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from opskit.cleanup import CleanupOptions, apply_cleanup, runs_folder
from opskit.cleanup.runs import exclusive
from opskit.errors import ConflictError
from opskit.library.pacing import Pacer
from opskit.progress import ProgressEvent
from opskit.sandbox import Sandbox

from .conftest import TIME_SCALE, build_world, expected_after

WEB_KEPT = {"web:3", "web:5", "web:7", "web:9", "web:13", "web:14"}
API_KEPT = {"api:13", "api:14"}


def test_a_cleanup_does_exactly_the_plan_and_never_touches_what_it_keeps(quiet: Sandbox) -> None:
    world = build_world(quiet)
    plan = world.plan()
    fates = {d.key: d.fate for d in plan.revisions}
    assert {k for k, f in fates.items() if f == "keep"} == WEB_KEPT | API_KEPT
    assert set(fates.values()) == {"keep", "deregister+delete"}
    reasons = plan.to_frame().set_index("revision").query("family == 'web'")["reason"]
    assert reasons[9] == "used by prod/web (PRIMARY)"
    assert (reasons[7], reasons[5]) == ("rollback target 1 of prod/web", "rollback target 2 of prod/web")
    assert reasons[3] == "pinned by tag opskit:keep"
    assert list(plan.summary()["deregister+delete"]) == [12, 8]  # api, web

    events: list[ProgressEvent] = []
    result = apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE, progress=events.append)

    deleted = {k for k, v in world.state().items() if v == "DELETE_IN_PROGRESS"}  # ECS removes them minutes later
    world.deletions_finish()
    assert world.state() == expected_after(world, plan)
    acting = sum(1 for d in plan.revisions if d.acts)
    calls = quiet.calls
    assert calls["DeregisterTaskDefinition"] == acting
    assert calls["DeleteTaskDefinitions"] == math.ceil(acting / 10)
    assert quiet.throttled == {}
    assert result.ok and result.counts == {"kept": 8, "deleted": acting}
    frame = result.to_frame()
    assert set(frame.loc[frame["fate"] == "keep", "outcome"]) == {"kept"}
    # as the run last saw them: unused, so deleted, whether ECS still listed them (for a few minutes) or not
    after = {f"{r.family}:{r.revision}": r.status_after for r in frame[frame["fate"] != "keep"].itertuples()}
    assert set(after.values()) <= {"gone", "DELETE_IN_PROGRESS"}
    assert not {k for k, v in after.items() if v == "gone"} & deleted  # what was gone then did not come back
    running = [e for e in events if e.state == "running"]
    assert running[-1].done == running[-1].total == acting
    assert all(e.eta is not None and e.eta >= 0 for e in running)
    assert [e.state for e in events if e.state != "running"] == ["started", "done"]
    assert Path(result.journal).name.endswith(".jsonl.done")
    assert "<table>" in result._repr_html_() and result.to_dict()["counts"] == result.counts


def test_by_default_a_run_deregisters_and_the_next_one_deletes(quiet: Sandbox) -> None:
    world = build_world(quiet)
    options = world.options(delete_deregistered=False)
    first = world.plan(options)
    apply_cleanup(first, quiet.aws(), rate_scale=TIME_SCALE)
    state = world.state()
    assert {k for k, s in state.items() if s == "ACTIVE"} == WEB_KEPT | API_KEPT
    assert {k for k, s in state.items() if s == "INACTIVE"} == {d.key for d in first.revisions if d.acts}
    assert quiet.calls["DeleteTaskDefinitions"] == 0

    second = world.plan(options)
    assert {d.key for d in second.revisions if d.fate == "delete"} == {d.key for d in first.revisions if d.acts}
    apply_cleanup(second, quiet.aws(), rate_scale=TIME_SCALE)
    world.deletions_finish()
    assert world.state() == dict.fromkeys(WEB_KEPT | API_KEPT, "ACTIVE")


def test_paced_to_the_buckets_a_cleanup_is_never_throttled() -> None:
    # At 20x an action has 50 ms, room for its re-check (five reads of the sandbox) and its call. Never throttled
    # means never faster than ECS allows; how close to the rates it runs is benchmarks/cleanup_rate.py's figure.
    with Sandbox(seed=None, time_scale=20, docker=False, registry=False) as sandbox:
        world = build_world(sandbox, revisions=30)  # 52 to deregister and delete: 20 at once, then 1/s (scaled)
        plan = world.plan()
        sandbox.throttle.refill()
        sandbox.reset_calls()
        result = apply_cleanup(plan, sandbox.aws(), rate_scale=20)
        assert sandbox.throttled == {}
        assert result.ok and result.throttled == {}
        assert sandbox.calls["DeregisterTaskDefinition"] == len(plan.to_deregister)
        world.deletions_finish()
        assert world.state() == expected_after(world, plan)


def test_going_faster_than_ecs_allows_is_throttled_yet_nothing_fails() -> None:
    # At AWS's own rate (1 deregistration a second after a burst of 20) even a loaded machine goes faster.
    with Sandbox(seed=None, time_scale=1, docker=False, registry=False) as slow:
        world = build_world(slow, revisions=16)  # 24 to deregister: a burst of 20, then 1 per second
        plan = world.plan()
        pacer = Pacer(rate_scale=10)  # believes ECS allows ten times what it does
        result = apply_cleanup(plan, slow.aws(max_attempts=1), pacer=pacer)  # every throttle reaches the pacer
        assert slow.throttled["DeregisterTaskDefinition"] > 0
        assert sum(result.throttled.values()) > 0
        world.deletions_finish()
        assert result.ok and world.state() == expected_after(world, plan)


def test_injected_throttles_and_server_errors_are_absorbed(quiet: Sandbox) -> None:
    world = build_world(quiet, revisions=10)
    plan = world.plan()
    for action in ("DeregisterTaskDefinition", "DeleteTaskDefinitions"):
        quiet.faults.set(action, throttle_rate=0.2, error_rate=0.05)  # botocore backs off ~1 s per retry
    result = apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE)
    world.deletions_finish()
    assert result.ok and world.state() == expected_after(world, plan)
    assert quiet.throttled["DeregisterTaskDefinition"] > 0


def test_a_service_moved_to_an_old_revision_after_the_plan_keeps_it(quiet: Sandbox) -> None:
    world = build_world(quiet)
    plan = world.plan(world.options(images=True, untagged_days=0, unreferenced_days=0))
    web = world.family("web")
    assert next(d for d in plan.revisions if d.key == f"{web}:4").fate == "deregister+delete"
    assert next(d for d in plan.images if "v4" in d.tags and d.repository == web).fate == "delete"
    world.ecs.update_service(cluster=world.cluster, service="web", taskDefinition=f"{web}:4")  # a manual rollback

    result = apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE)

    frame = result.to_frame().set_index(["family", "revision"])
    moved = frame.loc[(web, 4)]
    assert moved["outcome"] == "skipped"
    assert moved["detail"].startswith("used by prod/web (PRIMARY)") and moved["detail"].endswith("since the plan")
    expected = expected_after(world, plan) | {"web:4": "ACTIVE"}
    world.deletions_finish()
    assert world.state() == expected
    images = result.images_frame()
    v4 = images[images["digest"] == next(d.digest for d in plan.images if "v4" in d.tags and d.repository == web)]
    assert list(v4["outcome"]) == ["skipped"] and "web:4, which refers to it, was not deleted" in v4["detail"].iloc[0]
    assert result.ok and result.counts["skipped"] == 1


def test_a_revision_deployed_and_left_again_after_the_plan_stays_as_a_rollback_target(quiet: Sandbox) -> None:
    world = build_world(quiet)
    plan = world.plan()
    web = world.family("web")
    for n in (4, 9):  # a rollback to 4, then forward to 9 again: 4 is now what "roll back" goes to
        world.ecs.update_service(cluster=world.cluster, service="web", taskDefinition=f"{web}:{n}")
        world.settle()

    result = apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE)

    row = result.to_frame().set_index(["family", "revision"]).loc[(web, 4)]
    assert (row["outcome"], row["detail"]) == ("skipped", "rollback target 1 of prod/web (now)")
    world.deletions_finish()
    assert world.state() == expected_after(world, plan) | {"web:4": "ACTIVE"}


def test_images_go_only_where_no_kept_revision_refers_to_them(quiet: Sandbox) -> None:
    world = build_world(quiet)
    options = world.options(images=True, untagged_days=0, unreferenced_days=0)
    plan = world.plan(options)
    assert plan.calls["BatchDeleteImage"] == 2  # one per repository
    result = apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE)
    assert result.ok
    assert world.images() == {
        "web": {f"v{n}" for n in (3, 5, 7, 9, 13, 14)},
        "api": {"v13", "v14"},
    }
    assert result.image_counts == {"deleted": 2 * 3 + 8 + 12, "kept": 8}


def test_young_images_and_revisions_stay(quiet: Sandbox) -> None:
    world = build_world(quiet)
    plan = world.plan(world.options(keep_days=1, images=True))  # the whole world is an hour old
    assert plan.empty
    assert {d.protections[-1] for d in plan.revisions} == {"young"}
    assert {d.fate for d in plan.images} == {"keep"}


def test_a_revision_already_being_deleted_is_reported_until_ecs_lets_it_go(quiet: Sandbox) -> None:
    world = build_world(quiet, revisions=10)
    ecs, api = world.ecs, world.family("api")
    ecs.update_service(cluster=world.cluster, service="api", taskDefinition=f"{api}:2")
    world.settle()
    ecs.deregister_task_definition(taskDefinition=f"{api}:2")  # the service keeps running it
    ecs.delete_task_definitions(taskDefinitions=[f"{api}:2"])  # held: DELETE_IN_PROGRESS while api runs it
    assert world.state()["api:2"] == "DELETE_IN_PROGRESS"
    options = world.options(families=(api,), rollback_depth=1)
    plan = world.plan(options)
    held = next(d for d in plan.revisions if d.revision == 2)
    assert held.fate == "deleting" and "used by prod/api (PRIMARY)" in held.reason
    quiet.reset_calls()

    result = apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE)

    row = result.to_frame().set_index("revision").loc[2]
    assert (row["outcome"], row["status_after"]) == ("delete_in_progress", "DELETE_IN_PROGRESS")
    assert world.state()["api:2"] == "DELETE_IN_PROGRESS"
    ecs.update_service(cluster=world.cluster, service="api", taskDefinition=f"{api}:10")
    world.settle()
    assert "api:2" not in world.state()  # ECS let it go once nothing used it
    again = world.plan(options)
    assert 2 not in {d.revision for d in again.revisions}


def test_two_cleanups_at_once_the_second_refuses(quiet: Sandbox) -> None:
    world = build_world(quiet, revisions=10)
    plan = world.plan()
    with exclusive(runs_folder(quiet.aws())), pytest.raises(ConflictError, match="another cleanup is running"):
        apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE)
    assert set(world.state().values()) == {"ACTIVE"}


def test_an_unknown_family_is_a_one_line_error(quiet: Sandbox) -> None:
    from opskit.errors import NotFoundError

    world = build_world(quiet, revisions=10)
    with pytest.raises(NotFoundError, match=r"^no task-definition family 'nosuch' in us-east-1: list them"):
        world.plan(CleanupOptions(families=("nosuch",)))
