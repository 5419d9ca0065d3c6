"""The runbooks as people see them: served by `opskit runbooks` (Voila on 127.0.0.1, one demo sandbox for all
kernels) and driven in Debian's headless chromium. Each test clicks its panel's main button, waits for what it
shows, checks the layout (no control collapsed to nothing, covered by another or pushed out of its panel) and
saves a screenshot of the panel: to a temporary folder, or to the folder $OPSKIT_SCREENSHOTS_DIR names
(scripts/screenshots runs these tests with docs/screenshots/, which the README shows)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.widgets.conftest import chromium, kernel_env, stop_runbooks

pytestmark = [pytest.mark.docker, pytest.mark.registry]
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
WAIT_MS = 90_000
SCREENSHOTS_DIR = "OPSKIT_SCREENSHOTS_DIR"  # where to save the screenshots instead of a temporary folder

# A control is faulty when it is displayed but has no area, when another element sits on its centre, or when it
# sticks out of its panel; a label is faulty when its text is cut short. Hidden things (display: none) are not
# checked.
LAYOUT_FAULTS = """
(panel) => {
  const faults = [];
  const bounds = panel.getBoundingClientRect();
  const describe = (el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} "${
    (el.innerText || el.value || el.placeholder || el.getAttribute("aria-label") || "").trim().slice(0, 40)}"`;
  for (const label of panel.querySelectorAll(".widget-label, .widget-label-basic, button")) {
    if (label.offsetParent !== null && label.scrollWidth > label.clientWidth + 1) {
      faults.push(`cut short: ${describe(label)}`);
    }
  }
  const controls = panel.querySelectorAll(
    "button, input, select, textarea, .widget-hprogress, .widget-image, .opskit-w table");
  for (const el of controls) {
    if (el.offsetParent === null || getComputedStyle(el).visibility === "hidden") continue;
    el.scrollIntoView({block: "center", inline: "nearest"});
    const box = el.getBoundingClientRect();
    if (box.width < 2 || box.height < 2) { faults.push(`no area: ${describe(el)}`); continue; }
    if (!el.closest(".scroll") && (box.left < bounds.left - 1 || box.right > bounds.right + 1)) {
      faults.push(`outside its panel: ${describe(el)}`);
    }
    if (el.matches("button, input, select, textarea")) {
      const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
      if (!hit || !(hit === el || el.contains(hit))) {
        faults.push(`covered: ${describe(el)} by ${hit ? describe(hit) : "nothing"}`);
      }
    }
  }
  return faults;
}
"""


@dataclass
class Runbooks:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def children(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def runbooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runbooks]:
    """`opskit runbooks` (the README's command) as a subprocess; stopped by its pid, which must stop the rest."""
    folder = tmp_path_factory.mktemp("runbooks")
    log = folder / "stderr.log"
    port = free_port()
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "opskit.cli.runbooks", "--port", str(port), "--no-browser"],
            env={**kernel_env(), "OPSKIT_STATE_DIR": str(folder / "state")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = Runbooks(process, f"http://127.0.0.1:{port}/", log)
    try:
        deadline = time.monotonic() + 90
        while "opskit runbooks: serving" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, f"opskit runbooks exited: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        assert "opskit runbooks: serving" in log.read_text(), log.read_text()[-2000:]
        yield server
    finally:
        children = server.children()
        stop_runbooks(process, log)
        for pid in children:  # the Voila server and the registry it served with
            assert not Path(f"/proc/{pid}").exists(), f"{pid} outlived opskit runbooks"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the screenshots go to: a temporary one, unless $OPSKIT_SCREENSHOTS_DIR names one."""
    named = os.environ.get(SCREENSHOTS_DIR)
    folder = Path(named).absolute() if named else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_runbook(browser: Any, runbooks: Runbooks, name: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)
    # Only 127.0.0.1 answers: a CDN fetch fails at once instead of hanging the page.
    local = re.compile(r"^(http://127\.0\.0\.1[:/]|blob:|data:)")
    page.route("**/*", lambda route: route.continue_() if local.match(route.request.url) else route.abort())
    page.goto(f"{runbooks.url}voila/render/{name}.ipynb")
    return page


def click_and_wait(page: Any, button: Any, messages: Any, busy: str, done: str) -> None:
    """Click ``button``, then wait until the panel's message said ``busy`` and then ``done``: a job may be over
    before a poll would see it, so a MutationObserver installed first records that it started."""
    messages.evaluate(
        """(m, busy) => { window.__opskitBusy = false;
            new MutationObserver(() => { if (m.innerText.includes(busy)) window.__opskitBusy = true; })
              .observe(m, {subtree: true, childList: true, characterData: true}); }""",
        busy,
    )
    button.click()
    page.wait_for_function(
        "([m, done]) => window.__opskitBusy && m.innerText.includes(done)", arg=[messages.element_handle(), done]
    )


def check_layout(page: Any, panel: str) -> None:
    faults = page.locator(panel).evaluate(LAYOUT_FAULTS)
    assert faults == []


def screenshot(page: Any, panel: str, folder: Path, name: str) -> Path:
    """The whole panel, however tall: the viewport grows to hold it first (Voila scrolls inside its page)."""
    scroll_to_top = "(el) => { for (let up = el; up; up = up.parentElement) up.scrollTop = 0; }"
    page.locator(panel).evaluate(scroll_to_top)
    box = page.locator(panel).bounding_box()
    page.set_viewport_size({"width": 1280, "height": int(box["y"] + box["height"]) + 40})
    page.locator(panel).evaluate(scroll_to_top)
    path = folder / f"{name}.png"
    path.unlink(missing_ok=True)
    page.locator(panel).screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def test_release_runbook_builds_and_releases_from_the_button(
    browser: Any, runbooks: Runbooks, screenshots: Path
) -> None:
    page = open_runbook(browser, runbooks, "release")
    panel = ".opskit-release-panel"
    page.wait_for_selector(f"{panel} .msg.info:has-text('read the plan and the diff')")
    assert page.locator(f"{panel} .opskit-table").first.inner_text().count("\trun\t") == 5
    check_layout(page, panel)

    page.get_by_role("button", name="Build & Release").click()
    page.wait_for_selector(f"{panel} .msg.success, {panel} .msg.error")
    assert "COMPLETED" in page.locator(f"{panel} .msg.success").inner_text(timeout=1000)
    record = page.locator(f"{panel} .opskit-table:has-text(\"release's record\")").inner_text()
    assert re.search(r"outcome\s+COMPLETED", record), record
    assert "(service web) has reached a steady state" in page.locator(f"{panel} .log").inner_text()
    check_layout(page, panel)
    screenshot(page, panel, screenshots, "release-panel")
    page.close()


def test_audit_runbook_syncs_filters_and_shows_one_revision(
    browser: Any, runbooks: Runbooks, screenshots: Path
) -> None:
    page = open_runbook(browser, runbooks, "audit")
    panel = ".opskit-revision-browser"
    message = page.locator(f"{panel} .opskit-messages")
    page.wait_for_selector(f"{panel} .msg.success:has-text('synced')")

    page.get_by_label("family").select_option("web")
    table = page.locator(f"{panel} .opskit-table").first
    page.wait_for_function(
        "(t) => [...t.querySelectorAll('tr')].slice(1).every((row) => row.cells[0].innerText === 'web')",
        arg=table.element_handle(),
    )
    click_and_wait(page, page.get_by_role("button", name="Sync"), message, "syncing", "synced")
    environment = page.locator(f"{panel} .opskit-table").nth(2).inner_text()
    assert "DATABASE_URL" in environment and "********" in environment and "info" not in environment
    timeline = page.locator(f"{panel} .widget-image")
    assert timeline.evaluate("(img) => img.complete && img.naturalWidth") > 400
    check_layout(page, panel)
    screenshot(page, panel, screenshots, "revision-browser")
    page.close()


def test_audit_runbook_reports_policy_findings_grouped_by_check(
    browser: Any, runbooks: Runbooks, screenshots: Path
) -> None:
    page = open_runbook(browser, runbooks, "audit")
    panel = ".opskit-policy-report"
    message = page.locator(f"{panel} .opskit-messages")
    page.wait_for_selector(f"{panel} .msg:has-text('checks failed')")
    run = page.locator(panel).get_by_role("button", name="Run checks")
    click_and_wait(page, run, message, "syncing the library and checking", "checks failed")
    opened = page.locator(f"{panel} details.check[open]")
    assert opened.count() >= 4
    assert "fix: " in opened.first.inner_text()
    page.locator(panel).get_by_label("check", exact=True).select_option("REL002")
    page.wait_for_function(
        "(p) => p.querySelectorAll('details.check').length === 1", arg=page.locator(panel).element_handle()
    )
    page.locator(panel).get_by_label("check", exact=True).select_option("(all)")
    check_layout(page, panel)
    screenshot(page, panel, screenshots, "policy-report")
    page.close()


def test_cleanup_runbook_applies_the_plan_after_the_confirmation(
    browser: Any, runbooks: Runbooks, screenshots: Path
) -> None:
    page = open_runbook(browser, runbooks, "cleanup")
    panel = ".opskit-cleanup-panel"
    page.wait_for_selector(f"{panel} .msg.info:has-text('read the plan')")
    apply = page.locator(panel).get_by_role("button", name="Apply")
    assert apply.is_disabled()
    check_layout(page, panel)
    page.locator(panel).get_by_label(re.compile("I have read the plan")).check()
    page.wait_for_function("(b) => !b.disabled", arg=apply.element_handle())
    apply.click()
    page.wait_for_selector(f"{panel} .msg.success, {panel} .msg.error")
    assert page.locator(f"{panel} .msg.success").inner_text(timeout=1000).startswith("cleanup done: revisions:")
    outcome = page.locator(f"{panel} .opskit-table:has-text('What happened to each revision')").inner_text()
    assert re.search(r"\b(deleted|deregistered)\b", outcome), outcome
    check_layout(page, panel)
    screenshot(page, panel, screenshots, "cleanup-panel")
    page.close()


def test_a_pause_hook_is_rolled_back_then_approved_from_the_panel(
    browser: Any, runbooks: Runbooks, screenshots: Path
) -> None:
    """The demo's checkout deploys BLUE_GREEN with a PAUSE hook after the test traffic shift: the panel shows the
    hook and its time left, and its buttons answer it (ContinueServiceDeployment ROLLBACK, then CONTINUE)."""
    page = open_runbook(browser, runbooks, "release")
    panel = ".opskit-release-panel"
    page.wait_for_selector(f"{panel} .msg.info:has-text('read the plan and the diff')")
    page.locator(panel).get_by_label("service", exact=True).fill("checkout")
    pause = page.locator(f"{panel} .opskit-pause")
    for answer, outcome in (("Roll back", "ROLLED_BACK"), ("Approve", "COMPLETED")):
        page.locator(panel).get_by_role("button", name="Plan release").click()
        page.wait_for_selector(f"{panel} .msg.info:has-text('read the plan and the diff')")
        page.get_by_role("button", name="Build & Release").click()
        pause.get_by_role("button", name=answer).wait_for()
        details = pause.inner_text()
        assert "The deployment waits at a PAUSE hook" in details and "demo/checkout" in details
        assert re.search(r"ROLLBACK in \d+ min \d\d s unless answered", details), details
        if answer == "Approve":
            check_layout(page, panel)
            screenshot(page, panel, screenshots, "release-panel-pause")
        pause.get_by_role("button", name=answer).click()
        page.wait_for_selector(f"{panel} .msg.success, {panel} .msg.error")
        assert pause.is_hidden()
        record = page.locator(f"{panel} .opskit-table:has-text(\"release's record\")").inner_text()
        assert re.search(rf"outcome\s+{outcome}", record), record
        if outcome == "ROLLED_BACK":
            assert "rolled back by ContinueServiceDeployment" in record, record
            why = page.locator(f"{panel} .opskit-table:has-text('Why it failed')").inner_text()
            assert re.search(r"hook\s+\w+\s+FAILED\s+PAUSE", why) and "Scaling activity" not in why, why
    page.close()
