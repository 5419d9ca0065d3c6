"""The library keeps what the checks need of each ECR repository: mutability with its exclusion filters, scanning
(scan on push and the scan frequency registry rules give), and the lifecycle policy text."""

from __future__ import annotations

import json

from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox

from .worlds import UNTAGGED_AFTER_14_DAYS, World


def test_repository_records_hold_the_settings(quiet: Sandbox) -> None:
    world = World(quiet)
    world.repository("web", lifecycle=UNTAGGED_AFTER_14_DAYS)
    world.repository("worker", mutability="MUTABLE", scan=False)
    world.repository("edge", mutability="IMMUTABLE_WITH_EXCLUSION", filters=("latest", "dev-*"))
    library = RevisionLibrary(quiet.aws(), cache_path=":memory:")
    report = library.sync(include=["images"])
    assert report.images is not None and report.images.repositories == 3
    records = {r.name: r for r in library.repository_records()}
    web, worker, edge = records["web"], records["worker"], records["edge"]
    assert (web.mutability, web.scan_on_push, web.scan_frequency) == ("IMMUTABLE", True, "SCAN_ON_PUSH")
    assert json.loads(web.lifecycle_policy or "") == UNTAGGED_AFTER_14_DAYS
    assert (worker.mutability, worker.scan_on_push, worker.scan_frequency, worker.lifecycle_policy) == (
        "MUTABLE",
        False,
        "MANUAL",
        None,
    )
    assert (edge.mutability, edge.exclusion_filters) == ("IMMUTABLE_WITH_EXCLUSION", ("latest", "dev-*"))
    assert web.uri == f"{quiet.registry_host}/web" and web.registry == quiet.registry_host
    # One lifecycle policy call per repository and one scanning-configuration call for up to 25 of them.
    assert quiet.calls["GetLifecyclePolicy"] == 3 and quiet.calls["BatchGetRepositoryScanningConfiguration"] == 1
