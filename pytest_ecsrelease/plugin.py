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
  the hardening checks). Items carry the check ID and cross-references as JUnit XML properties.

Fixtures:

- ``ecs_snapshot`` (session): the :class:`opskit.checks.Snapshot` of the target; ``ecs_library`` (session): its
  :class:`opskit.library.RevisionLibrary`, synced, for DataFrame assertions of your own;
- ``ecr_repository``, ``task_definition``, ``service``: a test using one runs once per repository (``repo``),
  ACTIVE revision (``family:revision``) or service (``cluster/service``) of the target, with its record;
- ``release_policy``: assertions such as ``release_policy.assert_rollback_possible(service)``;
- ``ecs_sandbox`` (a fresh empty sandbox per test) and ``ecs_sandbox_session`` (one demo sandbox per session), for
  tests of your own release scripts.

    def test_every_service_can_roll_back(release_policy, service):
        release_policy.assert_rollback_possible(service)

    def test_my_deploy_script(ecs_sandbox, monkeypatch):
        for name, value in ecs_sandbox.env.items():
            monkeypatch.setenv(name, value)
        ...
"""

from __future__ import annotations

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
        "--ecs-policy",
        dest="ecs_policy",
        nargs="?",
        const="release",
        default=None,  # checked with the ini value in EcsSettings: a one-line usage error, not argparse's usage block
        help="Collect the policy suite: release invariants (the default), all (adds hardening) or hardening.",
    )
    parser.addini("ecs_policy", "Policy suite to collect: release, all, hardening or none.", default="none")


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
    if settings == EcsSettings():
        return None  # the plugin is installed but not asked to look at anything
    return f"ecsrelease: {settings.describe()}; policy suite: {settings.policy}"


def _target(config: pytest.Config) -> EcsTarget:
    return config.stash[TARGET]


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
PER_RESOURCE = ("ecr_repository", "task_definition", "service")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = [name for name in PER_RESOURCE if name in metafunc.fixturenames]
    defined = getattr(metafunc, "_arg2fixturedefs", {})
    wanted = [name for name in wanted if name not in defined]  # a fixture of the project's own wins
    if not wanted:
        return
    from opskit.checks.snapshot import revision_label
    from opskit.errors import OpskitError

    try:
        snapshot = _target(metafunc.config).snapshot()
    except OpskitError as exc:
        pytest.fail(f"ecsrelease: opskit: {exc}", pytrace=False)  # a collection error of one line
    for name in wanted:
        if name == "ecr_repository":
            values: list[Any] = list(snapshot.scoped_repositories)
            ids = [r.name for r in snapshot.scoped_repositories]
        elif name == "task_definition":
            values = list(snapshot.active_revisions)
            ids = [revision_label(r.arn) for r in snapshot.active_revisions]
        else:
            values = list(snapshot.scoped_services)
            ids = [f"{s.cluster}/{s.service}" for s in snapshot.scoped_services]
        metafunc.parametrize(name, values, ids=ids)


@pytest.fixture(scope="session")
def ecs_snapshot(pytestconfig: pytest.Config) -> Snapshot:
    """The target's records (revisions, images, repositories, services, rollback targets), synced once."""
    snapshot: Snapshot = _snapshot_of(pytestconfig)()
    return snapshot


@pytest.fixture(scope="session")
def ecs_library(pytestconfig: pytest.Config) -> RevisionLibrary:
    """The target's revision library (synced once the snapshot is taken): its DataFrames, for your own asserts."""
    _snapshot_of(pytestconfig)()
    return _target(pytestconfig).library


@pytest.fixture
def release_policy(request: pytest.FixtureRequest) -> ReleasePolicy:
    """Assertions over the target, one per check: ``release_policy.assert_tag_immutable(ecr_repository)``."""
    from pytest_ecsrelease.policy import ReleasePolicy

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
