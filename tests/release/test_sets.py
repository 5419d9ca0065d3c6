"""Release sets as the repository declares them: opskit.toml or pyproject.toml, one of the two, every mistake one
line that names the file, the key and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import ConfigError
from opskit.release.sets import load_set

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
