"""The plugin installed next to someone else's tests: unasked, it makes no AWS call, parametrizes nothing and leaves
fixture names such as ``service`` to the project. Each run is a real pytest process that loads the installed plugin
through its entry point, as a project's own ``pytest`` would."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.sandbox import Sandbox

from .worlds import INNER, World, target_args

FOREIGN_CONFTEST = """
import pytest

@pytest.fixture
def service():
    return "billing"

@pytest.fixture
def release_policy():
    return "weekly"
"""

FOREIGN_TESTS = """
import pytest

@pytest.mark.parametrize("service", ["web", "worker"])
def test_parametrized_service(service):
    assert service in ("web", "worker")

@pytest.mark.parametrize("task_definition, ecr_repository", [("web:1", "web"), ("worker:7", "worker")])
def test_parametrized_names(task_definition, ecr_repository):
    assert task_definition.startswith(ecr_repository + ":")

def test_own_fixtures(service, release_policy):
    assert (service, release_policy) == ("billing", "weekly")

def test_the_installed_plugin_is_loaded(pytestconfig):
    assert pytestconfig.pluginmanager.hasplugin("ecsrelease")
"""

FOREIGN_OUTCOME = {"passed": 6}

# Every way the AWS SDK could find credentials, besides the files below.
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


@pytest.fixture
def foreign(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project of someone else's, with its own ``service`` and ``release_policy`` fixtures."""
    pytester.makeconftest(FOREIGN_CONFTEST)
    pytester.makepyfile(test_foreign=FOREIGN_TESTS)
    return pytester


@pytest.fixture
def sandbox_env(quiet: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The environment of a machine whose AWS SDK talks to ``quiet`` with valid credentials."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in quiet.env.items():
        monkeypatch.setenv(name, value)
    return quiet


@pytest.fixture
def no_credentials(quiet: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Sandbox:
    """No credentials anywhere: none in the environment, empty config and credentials files, no instance metadata.
    The endpoint still points at ``quiet``, so a call made anyway would be counted there."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "aws-empty"
    empty.mkdir()
    for name, file in (("AWS_CONFIG_FILE", "config"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials")):
        (empty / file).write_text("")
        monkeypatch.setenv(name, str(empty / file))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", quiet.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", quiet.region_name)
    return quiet


def test_unasked_the_plugin_makes_no_call_and_leaves_the_project_its_names(
    foreign: pytest.Pytester, sandbox_env: Sandbox
) -> None:
    sandbox_env.reset_calls()
    result = foreign.runpytest_subprocess(*INNER)
    result.assert_outcomes(**FOREIGN_OUTCOME)
    assert "ecsrelease:" not in result.stdout.str()
    assert sandbox_env.calls == {}
    # The same process, asked to look, reaches the sandbox through this environment: the count above can see a call.
    result = foreign.runpytest_subprocess(*INNER, "--ecs-policy=release")
    assert sandbox_env.calls, result.stdout.str()
    assert "ecsrelease: AWS" in result.stdout.str()


def test_unasked_the_plugin_needs_no_credentials(foreign: pytest.Pytester, no_credentials: Sandbox) -> None:
    no_credentials.reset_calls()
    result = foreign.runpytest_subprocess(*INNER)
    result.assert_outcomes(**FOREIGN_OUTCOME)
    assert no_credentials.calls == {}
    # Asked to look, the same environment has nothing to sign with: it really holds no credentials.
    result = foreign.runpytest_subprocess(*INNER, "--ecs-policy=release")
    result.stdout.fnmatch_lines(["*no AWS credentials found*"])
    assert result.ret != 0 and no_credentials.calls == {}


def test_a_per_resource_fixture_without_a_target_fails_in_one_line(
    pytester: pytest.Pytester, no_credentials: Sandbox
) -> None:
    pytester.makepyfile(
        test_release="""
        def test_service(ecs_service):
            pass

        def test_snapshot(ecs_snapshot):
            pass

        def test_policy(ecs_release_policy):
            pass

        def test_plain():
            pass
        """
    )
    no_credentials.reset_calls()
    result = pytester.runpytest_subprocess(*INNER, "-rE")
    result.assert_outcomes(passed=1, errors=3)
    lines = [line for line in result.stdout.lines if line.startswith("ecsrelease: ")]
    assert len(lines) == 3, result.stdout.str()
    for line in lines:
        assert "pass --ecs-sandbox" in line and "--ecs-cluster" in line
    assert "Traceback" not in result.stdout.str()
    assert no_credentials.calls == {}


def test_asked_the_plugin_leaves_a_tests_own_parametrization_alone(
    foreign: pytest.Pytester, world: World, aws_env: dict[str, str]
) -> None:
    foreign.makepyfile(
        test_mine="""
        import pytest

        @pytest.mark.parametrize("ecs_service", ["mine"])
        def test_own_values(ecs_service):
            assert ecs_service == "mine"

        def test_per_service(ecs_service):
            assert (ecs_service.cluster, ecs_service.service) == ("prod", "web")
        """
    )
    result = foreign.runpytest(*target_args(world.sandbox))
    result.assert_outcomes(passed=FOREIGN_OUTCOME["passed"] + 2)
    passed, _, _ = result.reprec.listoutcomes()  # type: ignore[attr-defined]
    mine = {r.nodeid for r in passed if r.nodeid.startswith("test_mine.py")}
    assert mine == {"test_mine.py::test_own_values[mine]", "test_mine.py::test_per_service[prod/web]"}


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_bare_ecs_policy_never_takes_a_test_path(pytester: pytest.Pytester, where: str) -> None:
    pytester.makepyfile(
        test_mine="def test_mine():\n    pass\n",
        test_other="def test_other():\n    pass\n",
    )
    args = ["--ecs-policy", "test_mine.py"] if where == "before" else ["test_mine.py", "--ecs-policy"]
    result = pytester.runpytest(*INNER, "--ecs-sandbox", *args, "-v")
    passed, _, failed = result.reprec.listoutcomes()  # type: ignore[attr-defined]
    ran = {r.nodeid for r in passed + failed}
    assert "test_mine.py::test_mine" in ran and "test_other.py::test_other" not in ran
    suite = {nodeid.split("::", 1)[1] for nodeid in ran if nodeid.startswith("ecsrelease::")}
    assert suite and all(name.startswith("REL") for name in suite)  # the release suite, without hardening
    result.stdout.fnmatch_lines(["ecsrelease: the demo sandbox, everything; policy suite: release"])
