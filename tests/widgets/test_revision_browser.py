"""RevisionBrowser driven headless against the demo sandbox: sync, filters, one revision's details, timeline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from opskit.aws import Aws
from opskit.library import MASK, RevisionLibrary
from opskit.sandbox import Sandbox
from opskit.sandbox.demo import DEMO
from opskit.widgets import RevisionBrowser
from tests.widgets.conftest import WAIT


@pytest.fixture(scope="module")
def library(seeded: Sandbox) -> Iterator[RevisionLibrary]:
    with RevisionLibrary(seeded.aws(), cache_path=":memory:", rate_scale=60) as library:
        yield library


@pytest.fixture(scope="module")
def browser(library: RevisionLibrary) -> RevisionBrowser:
    browser = RevisionBrowser(library)
    browser.wait(WAIT)
    assert browser.filtered.empty and browser.messages.kind is None, "nothing synced yet"
    browser.sync_button.click()
    browser.wait(WAIT)
    return browser


def test_sync_fills_the_table_newest_first(browser: RevisionBrowser, library: RevisionLibrary) -> None:
    assert browser.messages.kind == "success" and browser.messages.text.startswith("synced ")
    assert browser.progress.stages["sync"].state == "done"
    assert browser.progress.bar.value == 1.0
    revisions = library.revisions()
    assert len(browser.filtered) == len(revisions) > 50
    assert browser.family.options == ("(all)", *sorted(s.name for s in DEMO.services))
    assert browser.filtered["registered_at"].is_monotonic_decreasing
    assert browser.table.frame is not None and list(browser.table.frame.columns)[:3] == ["family", "revision", "status"]
    assert f"{len(revisions)} of {len(revisions)} revisions" in browser.table.value
    assert browser.timeline.value[:4] == b"\x89PNG"


def test_filters_narrow_the_table(browser: RevisionBrowser, library: RevisionLibrary) -> None:
    revisions = library.revisions()
    browser.family.value = "web"
    assert set(browser.filtered["family"]) == {"web"}
    browser.revision_status.value = "INACTIVE"
    assert set(browser.filtered["status"]) == {"INACTIVE"}
    assert len(browser.filtered) == ((revisions["family"] == "web") & (revisions["status"] == "INACTIVE")).sum()
    browser.revision_status.value = "(all)"

    newest = browser.filtered.iloc[0]
    browser.commit.value = newest["commit"][:7].upper()  # a prefix, any case
    assert browser.filtered["revision"].tolist() == [newest["revision"]]
    browser.commit.value = ""

    day = newest["registered_at"].date()
    browser.since.value = day - timedelta(days=20)
    browser.until.value = day
    shown = browser.filtered["registered_at"]
    assert len(shown) > 0 and shown.dt.date.min() >= day - timedelta(days=20) and shown.dt.date.max() <= day
    browser.since.value = browser.until.value = None
    browser.family.value = "(all)"
    assert len(browser.filtered) == len(revisions)


def test_a_revision_shows_its_containers_masked_environment_images_and_lineage(browser: RevisionBrowser) -> None:
    browser.family.value = "web"
    services = browser.library.services().set_index("service")
    current = services.loc["web", "task_definition"]
    browser.select(current.rsplit("/", 1)[-1])
    assert browser.selected == current
    assert browser.containers.frame is not None and browser.containers.frame["name"].tolist() == ["web"]
    environment = browser.environment.frame
    assert environment is not None
    assert set(environment["name"]) == {"LOG_LEVEL", "RELEASE", "DATABASE_URL"}
    assert set(environment["value"]) == {MASK}
    assert "info" not in browser.environment.value and "parameter/web" not in browser.environment.value
    assert browser.images.frame is not None and len(browser.images.frame) == 1
    lineage = browser.lineage.frame
    assert lineage is not None
    assert lineage[["cluster", "service"]].values.tolist() == [["demo", "web"]]
    assert lineage["is_current"].tolist() == [True] and lineage["completed"].tolist() == [True]

    browser.select("web:1")  # deleted long ago: not among the revisions shown
    assert browser.messages.kind == "warning" and browser.selected == current
    browser.family.value = "(all)"


def test_an_unreachable_account_is_a_message_not_a_traceback() -> None:
    aws = Aws(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", access_key_id="a", secret_access_key="b", max_attempts=1
    )
    with RevisionLibrary(aws, cache_path=":memory:", account_id="123456789012") as library:
        browser = RevisionBrowser(library, sync=True)
        browser.wait(WAIT)
    assert browser.messages.kind == "error"
    assert browser.messages.text.startswith("cannot reach AWS (Could not connect to the endpoint URL")
    assert not browser.sync_button.disabled
