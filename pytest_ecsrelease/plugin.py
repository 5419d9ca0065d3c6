"""The pytest plugin (registered through the ``pytest11`` entry point as ``ecsrelease``).

Fixtures for users' own tests of their release scripts:

- ``ecs_sandbox``: a fresh, empty opskit sandbox for one test;
- ``ecs_sandbox_session``: one sandbox seeded with the demo history, shared by the whole session.

Both are :class:`opskit.sandbox.Sandbox` objects: ``.env`` points boto3 and the aws CLI at them, ``.client("ecs")``
gives a client, ``.clock``, ``.throttle`` and ``.faults`` are the knobs.

    def test_my_deploy_script(ecs_sandbox, monkeypatch):
        monkeypatch.setenv("AWS_ENDPOINT_URL", ecs_sandbox.endpoint_url)
        ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opskit.sandbox import Sandbox


@pytest.fixture
def ecs_sandbox() -> Iterator[Sandbox]:
    """An empty sandbox running 60 times faster than AWS, for one test."""
    with Sandbox(seed=None, time_scale=60) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def ecs_sandbox_session() -> Iterator[Sandbox]:
    """A sandbox with the demo history, shared by the session (do not change what other tests read)."""
    with Sandbox(seed="demo", time_scale=60) as sandbox:
        yield sandbox
