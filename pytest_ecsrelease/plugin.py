"""The pytest plugin (registered through the ``pytest11`` entry point as ``ecsrelease``): release invariants for
Amazon ECS as fixtures and as a built-in policy suite, over opskit's revision library. It is a thin view: the
target's records come from :class:`opskit.library.RevisionLibrary`, the rules from :mod:`opskit.checks`.

Options (group ``ecsrelease``; each has an ini equivalent in ``[tool.pytest.ini_options]``, named after it with
underscores: ``ecs_region``, ``ecs_service`` (a list) ... ``ecs_policy``):

- ``--ecs-region``, ``--ecs-profile``, ``--ecs-endpoint-url``: where the target is (default: the AWS environment);
- ``--ecs-cluster``, ``--ecs-service`` (repeat), ``--ecs-family`` (repeat), ``--ecr-repository`` (repeat): what to
  check (default: everything in the account and region);
- ``--ecs-sandbox``: check opskit's embedded sandbox seeded with the demo history instead;
- ``--ecs-policy``: collect the built-in policy suite, one test per check and resource (``--ecs-policy=all`` adds
  the hardening checks, ``--ecs-policy=hardening`` runs only those). Its value goes after ``=``: a bare
  ``--ecs-policy`` means ``--ecs-policy=release``, and what follows it is a test path or another option.
  Items carry the check ID and cross-references as JUnit XML properties.

Unless one of these options or ini settings is given, the plugin stays out of the way: it makes no AWS call and
parametrizes nothing, and its fixtures' names all start with ``ecs_``, so a project's own ``service`` or
``task_definition`` is left alone (a project's own fixture of one of the names below overrides the plugin's, as
fixtures do).

Fixtures:

- ``ecs_snapshot`` (session): the :class:`opskit.checks.Snapshot` of the target; ``ecs_library`` (session): its
  :class:`opskit.library.RevisionLibrary`, synced, for DataFrame assertions of your own;
- ``ecs_repository``, ``ecs_task_definition``, ``ecs_service``: a test using one runs once per ECR repository
  (``repo``), ACTIVE revision (``family:revision``) or service (``cluster/service``) of the target, with its record;
- ``ecs_release_policy``: assertions such as ``ecs_release_policy.assert_rollback_possible(ecs_service)``;
- ``ecs_sandbox`` (a fresh empty sandbox per test) and ``ecs_sandbox_session`` (one demo sandbox per session), for
  tests of your own release scripts.

A test using a fixture that reads the target (all but the two sandboxes) when no target was given fails in one line
that says what to pass, without calling AWS.

    def test_every_service_can_roll_back(ecs_release_policy, ecs_service):
        ecs_release_policy.assert_rollback_possible(ecs_service)

    def test_my_deploy_script(ecs_sandbox, monkeypatch):
        for name, value in ecs_sandbox.env.items():
            monkeypatch.setenv(name, value)
        ...
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_ecsrelease.target import OPTIONS, EcsSettings, EcsTarget

if TYPE_CHECKING:
    from opskit.checks import Snapshot
    from opskit.library import RevisionLibrary
    from opskit.sandbox import Sandbox
    from pytest_ecsrelease.policy import ReleasePolicy

TARGET = pytest.StashKey[EcsTarget]()
MARKERS = (
    "ecs_policy: an item of the built-in ECS release policy suite (--ecs-policy)",
    "ecs_release: a release-invariant check of the policy suite",
    "ecs_hardening: a hardening check of the policy suite (--ecs-policy=all)",
)
INI_TYPES: dict[str, Literal["string", "linelist", "bool"]] = {"text": "string", "list": "linelist", "flag": "bool"}
INI_DEFAULTS: dict[str, Any] = {"text": "", "list": [], "flag": False}
POLICY_OPTION = "--ecs-policy"
NO_TARGET = (
    "ecsrelease: {fixture} reads an ECS target and none was given: pass --ecs-sandbox (opskit's demo sandbox), "
    "or --ecs-cluster, --ecs-region or another --ecs-* option (or its ecs_* ini setting) to check the AWS account"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ecsrelease", "ECS release policy (opskit)")
    for option, ini, kind, help_text in OPTIONS:  # an option's dest is its ini name
        if kind == "list":
            group.addoption(option, action="append", dest=ini, default=None, metavar="NAME", help=help_text)
        elif kind == "flag":
            group.addoption(option, action="store_true", dest=ini, default=False, help=help_text)
        else:
            group.addoption(option, dest=ini, default=None, help=help_text)
        parser.addini(ini, help_text, type=INI_TYPES[kind], default=INI_DEFAULTS[kind])
    group.addoption(
        POLICY_OPTION,
        dest="ecs_policy",
        # A bare --ecs-policy is rewritten to --ecs-policy=release before parsing (pytest_load_initial_conftests), so
        # the optional value is only ever taken from "=": argparse would otherwise take a following test path.
        nargs="?",
        const="release",
        default=None,  # checked with the ini value in EcsSettings: a one-line usage error, not argparse's usage block
        metavar="POLICY",
        help="Collect the policy suite: --ecs-policy for the release invariants, --ecs-policy=all adds the hardening "
        "checks, --ecs-policy=hardening runs only those.",
    )
    parser.addini("ecs_policy", "Policy suite to collect: release, all, hardening or none.", default="none")


@pytest.hookimpl(tryfirst=True)  # before pytest reads the early arguments to find the initial conftests
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """A bare ``--ecs-policy`` becomes ``--ecs-policy=release``, so the word after it stays a path or an option."""
    if not rewrite_bare_policy(args):
        return
    # The early parse already ran on the arguments as given; parse them again as they now are.
    early_config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(early_config.option))


def rewrite_bare_policy(args: list[str]) -> bool:
    """Rewrite every bare ``--ecs-policy`` of ``args`` (before a ``--``) in place; whether there was one."""
    rewritten = False
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == POLICY_OPTION:
            args[index] = f"{POLICY_OPTION}=release"
            rewritten = True
    return rewritten


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.stash[TARGET] = EcsTarget(EcsSettings.from_config(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    target = config.stash.get(TARGET, None)
    if target is not None:
        target.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash[TARGET].settings
    if not settings.asked:
        return None  # the plugin is installed but not asked to look at anything
    return f"ecsrelease: {settings.describe()}; policy suite: {settings.policy}"


def _target(config: pytest.Config) -> EcsTarget:
    return config.stash[TARGET]


def _asked_for(config: pytest.Config, fixture: str) -> None:
    """Fail the test in one line, before any AWS call, when no option or ini setting named a target."""
    if not _target(config).settings.asked:
        pytest.fail(NO_TARGET.format(fixture=fixture), pytrace=False)


def _snapshot_of(config: pytest.Config) -> Any:
    """``snapshot(hardening=...)`` of the session's target, with opskit's errors as one-line failures."""
    from opskit.errors import OpskitError

    def snapshot(*, hardening: bool = False) -> Snapshot:
        try:
            return _target(config).snapshot(hardening=hardening)
        except OpskitError as exc:
            pytest.fail(f"opskit: {exc}", pytrace=False)

    return snapshot


# -- the policy suite ----------------------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)  # before -k, -m and --deselect filter the items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = _target(config).settings
    if settings.policy == "none":
        return
    from pytest_ecsrelease.suite import collect_suite

    items.extend(collect_suite(session, settings.policy, _target(config).snapshot))


# -- fixtures parametrized per target resource ------------------------------------------------------------------
PER_RESOURCE = ("ecs_repository", "ecs_task_definition", "ecs_service")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not _target(metafunc.config).settings.asked:
        return  # unasked, a test using one of these fails in its fixture, in one line
    own = _parametrized_by_the_test(metafunc)
    wanted = [name for name in PER_RESOURCE if name in metafunc.fixturenames and name not in own]
    if not wanted:
        return
    from opskit.checks.snapshot import revision_label
    from opskit.errors import OpskitError

    try:
        snapshot = _target(metafunc.config).snapshot()
    except OpskitError as exc:
        pytest.fail(f"ecsrelease: opskit: {exc}", pytrace=False)  # a collection error of one line
    for name in wanted:
        if name == "ecs_repository":
            values: list[Any] = list(snapshot.scoped_repositories)
            ids = [r.name for r in snapshot.scoped_repositories]
        elif name == "ecs_task_definition":
            values = list(snapshot.active_revisions)
            ids = [revision_label(r.arn) for r in snapshot.active_revisions]
        else:
            values = list(snapshot.scoped_services)
            ids = [f"{s.cluster}/{s.service}" for s in snapshot.scoped_services]
        # Indirect: the value reaches the test through the fixture of that name, the project's own if it has one.
        metafunc.parametrize(name, values, ids=ids, indirect=True)


def _parametrized_by_the_test(metafunc: pytest.Metafunc) -> set[str]:
    """The names the test's own ``@pytest.mark.parametrize`` marks give values to: those are the test's to set."""
    names: set[str] = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.kwargs.get("argnames", mark.args[0] if mark.args else ())
        if isinstance(argnames, str):
            argnames = argnames.split(",")
        names.update(str(name).strip() for name in argnames)
    return names


def _resource(request: pytest.FixtureRequest, fixture: str) -> Any:
    """The record ``pytest_generate_tests`` gave this test."""
    _asked_for(request.config, fixture)
    if not hasattr(request, "param"):
        pytest.fail(
            f"ecsrelease: {fixture} is parametrized when tests are collected: "
            "name it among the test's arguments (not through request.getfixturevalue)",
            pytrace=False,
        )
    return request.param


@pytest.fixture
def ecs_repository(request: pytest.FixtureRequest) -> Any:
    """One ECR repository of the target (a :class:`opskit.records.RepositoryRecord`); the test runs once per
    repository, with its name as the id."""
    return _resource(request, "ecs_repository")


@pytest.fixture
def ecs_task_definition(request: pytest.FixtureRequest) -> Any:
    """One ACTIVE revision of the target (a :class:`opskit.records.RevisionRecord`); the test runs once per
    revision, ``family:revision`` as the id."""
    return _resource(request, "ecs_task_definition")


@pytest.fixture
def ecs_service(request: pytest.FixtureRequest) -> Any:
    """One service of the target (a :class:`opskit.records.ServiceRecord`); the test runs once per service,
    ``cluster/service`` as the id."""
    return _resource(request, "ecs_service")


@pytest.fixture(scope="session")
def ecs_snapshot(pytestconfig: pytest.Config) -> Snapshot:
    """The target's records (revisions, images, repositories, services, rollback targets), synced once."""
    _asked_for(pytestconfig, "ecs_snapshot")
    snapshot: Snapshot = _snapshot_of(pytestconfig)()
    return snapshot


@pytest.fixture(scope="session")
def ecs_library(pytestconfig: pytest.Config) -> RevisionLibrary:
    """The target's revision library (synced once the snapshot is taken): its DataFrames, for your own asserts."""
    _asked_for(pytestconfig, "ecs_library")
    _snapshot_of(pytestconfig)()
    return _target(pytestconfig).library


@pytest.fixture
def ecs_release_policy(request: pytest.FixtureRequest) -> ReleasePolicy:
    """Assertions over the target, one per check: ``ecs_release_policy.assert_tag_immutable(ecs_repository)``."""
    from pytest_ecsrelease.policy import ReleasePolicy

    _asked_for(request.config, "ecs_release_policy")
    node = request.node if isinstance(request.node, pytest.Item) else None
    return ReleasePolicy(_snapshot_of(request.config), node)


# -- sandboxes for users' own tests ----------------------------------------------------------------------------
@pytest.fixture
def ecs_sandbox() -> Iterator[Sandbox]:
    """An empty sandbox running 60 times faster than AWS, for one test."""
    from opskit.sandbox import Sandbox

    with Sandbox(seed=None, time_scale=60) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def ecs_sandbox_session(pytestconfig: pytest.Config) -> Iterator[Sandbox]:
    """A sandbox with the demo history, shared by the session (do not change what other tests read); the one
    ``--ecs-sandbox`` checks when that option is given."""
    target = _target(pytestconfig)
    if target.settings.sandbox:
        yield target.demo_sandbox()
        return
    from opskit.sandbox import Sandbox

    with Sandbox(seed="demo", time_scale=60) as sandbox:
        yield sandbox
