"""Release sets as the repository declares them: opskit.toml or pyproject.toml, one of the two, every mistake one
line that names the file, the key and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import ConfigError, OpskitError
from opskit.release.sets import load_set, plan_set
from tests.release.conftest import World

PROD = """
[sets.prod]
cluster = "prod"
repository = "app"

[[sets.prod.waves]]
services = ["api"]
before = [{ name = "migrate", service = "api", command = ["python", "manage.py", "migrate"] }]

[[sets.prod.waves]]
services = ["web", "worker"]

[sets.prod.services.worker]
container = "worker"
task_definition = ".aws/worker.json"
wait_until = "stable"
"""


def test_a_set_in_opskit_toml_and_the_same_in_pyproject(tmp_path: Path) -> None:
    (tmp_path / "opskit.toml").write_text(PROD)
    found = load_set(tmp_path, "prod")
    assert [w.services for w in found.waves] == [("api",), ("web", "worker")]
    (migrate,) = found.waves[0].before
    assert (migrate.name, migrate.service, migrate.command) == ("migrate", "api", ("python", "manage.py", "migrate"))
    assert found.all_services == ("api", "web", "worker") and found.repository == "app"
    worker = found.settings("worker")
    assert worker.container == "worker" and worker.task_definition == Path(".aws/worker.json")
    assert str(worker.until) == "stable" and str(found.settings("web").until) == "deployed"

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[project]\nname = 'app'\n"
        + PROD.replace("[sets.", "[tool.opskit.sets.").replace("[[sets.", "[[tool.opskit.sets.")
    )
    from dataclasses import replace

    assert load_set(project, "prod") == replace(found, source=project / "pyproject.toml")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda t: t.replace('cluster = "prod"\n', ""), "opskit.toml: set prod: cluster is missing: add it"),
        (lambda t: t.replace('repository = "app"', 'repo = "app"'), "unknown key 'repo': use any of cluster,"),
        (lambda t: t.replace('services = ["web", "worker"]', 'services = ["web", "api"]'), "'api' is in more than"),
        (lambda t: t.replace('service = "api"', 'service = "web"'), "task 'migrate' runs 'web''s revision, which no"),
        (lambda t: t.replace('"stable"', '"soon"'), "services.worker: --wait-until 'soon' is not one of"),
        (lambda t: t.replace("[sets.prod.services.worker]", "[sets.prod.services.cron]"), "services.cron is in no"),
        (lambda t: t.replace('command = ["python", "manage.py", "migrate"]', 'command = "migrate"'), "must be a list"),
        (lambda t: t + "[broken", "opskit.toml is not valid TOML"),
    ],
)
def test_each_mistake_is_one_line(tmp_path: Path, change: object, words: str) -> None:
    (tmp_path / "opskit.toml").write_text(change(PROD))  # type: ignore[operator]
    with pytest.raises(ConfigError) as refused:
        load_set(tmp_path, "prod")
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_a_missing_set_or_two_declarations_are_refused(tmp_path: Path) -> None:
    (tmp_path / "opskit.toml").write_text(PROD)
    with pytest.raises(ConfigError, match=r"no release set 'staging' in opskit.toml \(sets: prod\): declare"):
        load_set(tmp_path, "staging")
    (tmp_path / "pyproject.toml").write_text("[tool.opskit.sets.prod]\ncluster = 'prod'\n")
    with pytest.raises(ConfigError, match=r"declared in both opskit\.toml and pyproject\.toml"):
        load_set(tmp_path, "prod")
    (tmp_path / "opskit.toml").unlink()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"no release set 'prod' in opskit.toml \(sets: none\)"):
        load_set(tmp_path, "prod")


def test_a_set_plans_every_service_for_one_commit_and_refuses_as_a_whole(world: World) -> None:
    """prod/web and prod/api (its own family, the same repository): one tag, each service's own plan, wave by wave;
    a service the set cannot release refuses the set in one line that names it, before anything is built."""
    body = world.ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]
    world.ecs.register_task_definition(family="api", containerDefinitions=body["containerDefinitions"])
    world.ecs.create_service(cluster="prod", serviceName="api", taskDefinition="api:1", desiredCount=1)
    worker = PROD[PROD.index("[sets.prod.services.worker]") :]
    declared = PROD.replace(worker, "").replace('services = ["web", "worker"]', 'services = ["web"]')
    declared = declared.replace('repository = "app"', 'repository = "web"')
    (world.app / "opskit.toml").write_text(declared)
    world.commit("declare the set")
    release_set = load_set(world.app, "prod")
    plan = plan_set(world.aws, release_set, root=world.app)
    assert list(plan.plans) == ["api", "web"] and {p.tag for p in plan.plans.values()} == {plan.tag}
    frame = plan.to_frame()
    assert frame.iloc[0].to_dict() == {
        "wave": 1,
        "service": "api",
        "step": "migrate",
        "action": "task",
        "detail": "python manage.py migrate with api's new revision, to its exit",
    }
    assert set(frame.loc[frame["wave"] == 2, "service"]) == {"web"}
    assert list(plan.to_dict()["plans"]) == ["api", "web"]

    (world.app / "opskit.toml").write_text(declared.replace('services = ["web"]', 'services = ["web", "nope"]'))
    world.commit("a service that is not there")
    with pytest.raises(OpskitError, match=r"^set prod: nope: service 'nope' not found in cluster 'prod'"):
        plan_set(world.aws, load_set(world.app, "prod"), root=world.app)
    assert len(world.ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]) == 1
