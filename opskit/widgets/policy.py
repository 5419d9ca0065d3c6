"""PolicyReport: the policy checks' findings, grouped by check, filterable, with each check's remediation.

A thin view over :mod:`opskit.checks`: Run checks takes a :class:`~opskit.checks.Snapshot` of the library (synced
first) in the background and runs :func:`~opskit.checks.run_checks`; the filters (status, severity, group, check,
resource) work on the findings in memory. Each check is a folding section: its rule, how to fix it, where else it
is checked (AWS Config, Security Hub, Checkov), and one row per resource with what was found.

>>> report = PolicyReport(RevisionLibrary(aws), run=True)        # doctest: +SKIP
>>> report                                 # in a notebook: the panel
>>> report.shown.query("status == 'FAIL'")[["check_id", "resource", "message"]]     # doctest: +SKIP
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime

import ipywidgets as widgets
import pandas as pd

from opskit.checks import SEVERITIES, Finding, Snapshot, Target, checks_for, findings_frame, run_checks, summary
from opskit.library import RevisionLibrary
from opskit.widgets.common import Background, MessageArea, frame_html, guard
from opskit.widgets.style import block, button, checkbox, field, form, heading, style_sheet

ALL = "(all)"
FAILED, PASSED = "failed", "passed"
ROW_COLUMNS = ["status", "resource_type", "resource", "message"]


class PolicyReport(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """The release policy (and, ticked, the hardening checks) over ``library``, for the chosen target.

    ``cluster``, ``services`` and ``families`` narrow what is checked, as ``opskit check`` does. ``clock`` gives
    "now" for the lifecycle rules (a sandbox's clock on a sandbox; default the wall clock). ``findings`` holds every
    finding of the last run; ``shown`` the findings frame as the filters leave it.
    """

    def __init__(
        self,
        library: RevisionLibrary,
        *,
        cluster: str = "",
        services: Sequence[str] = (),
        families: Sequence[str] = (),
        hardening: bool = False,
        run: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.library = library
        self.clock = clock
        self.findings: list[Finding] = []
        self.shown = findings_frame([])

        self.cluster = field("cluster", cluster, "every cluster")
        self.services = field("services", ", ".join(services), "names or cluster/name, comma-separated")
        self.families = field("families", ", ".join(families), "comma-separated")
        self.hardening = checkbox("hardening checks too", hardening)
        self.run_button = button("Run checks", "info", "Sync the library and run the checks", "check")
        self.status = widgets.Dropdown(options=[FAILED, ALL, PASSED], value=FAILED, description="show")
        self.severity = widgets.Dropdown(options=[ALL, *SEVERITIES], value=ALL, description="severity")
        self.group = widgets.Dropdown(options=[ALL, "release", "hardening"], value=ALL, description="group")
        self.check = widgets.Dropdown(options=[ALL], value=ALL, description="check")
        self.resource = field("resource", "", "any part of its name", width="initial")
        for control in (self.status, self.severity, self.group, self.check):
            control.layout.width = "auto"
        self.messages = MessageArea()
        self.counts = widgets.HTML("")
        self.groups = widgets.HTML("", layout=widgets.Layout(width="100%"))
        self.work = Background(self.messages, self._busy)

        self.run_button.on_click(lambda _: self.run())
        for control in (self.status, self.severity, self.group, self.check, self.resource):
            control.observe(lambda _: self._show(), names="value")

        super().__init__(
            [
                style_sheet(),
                heading("What to check"),
                form([self.cluster, self.services, self.families]),
                self.hardening,
                widgets.HBox([self.run_button]),
                self.messages,
                self.counts,
                heading("Findings, by check"),
                form([self.status, self.severity, self.group, self.check, self.resource], min_width="200px"),
                self.groups,
            ],
            layout=widgets.Layout(width="100%", grid_gap="4px"),
        )
        self.add_class("opskit-policy-report")
        if run:
            self.run()

    def target(self) -> Target:
        return Target(
            cluster=self.cluster.value.strip() or None,
            services=_names(self.services.value),
            families=_names(self.families.value),
        )

    def run(self) -> bool:
        """Sync the library and run the checks in the background; False if a run is going on."""
        target, hardening = guard(self.messages, self.target), self.hardening.value
        if target is None:  # a malformed name: the message says which
            return False
        self.messages.info(f"syncing the library and checking {target.describe()} ...")

        def job() -> list[Finding]:
            chosen = checks_for(("release", "hardening") if hardening else ("release",))
            now = self.clock() if self.clock else None
            snapshot = Snapshot.from_library(self.library, target, hardening=hardening, now=now)
            return run_checks(snapshot, ids=[c.id for c in chosen])

        return self.work.start("the checks", job, self._show_findings)

    def wait(self, timeout: float | None = None) -> None:
        """Block until a run going on in the background ends (TimeoutError after ``timeout`` seconds)."""
        self.work.wait(timeout)

    # -- showing ------------------------------------------------------------------------------------------------------
    def _show_findings(self, findings: list[Finding]) -> None:
        self.findings = findings
        ids = sorted({f.id for f in findings})
        keep = self.check.value if self.check.value in ids else ALL
        self.check.options = [ALL, *ids]
        self.check.value = keep
        frame = findings_frame(findings)
        counts = (
            frame.assign(failed=~frame["passed"].astype(bool))
            .groupby(["group", "severity"], observed=True)
            .agg(checked=("passed", "size"), failed=("failed", "sum"))
            .reset_index()
        )
        self.counts.value = block(
            f"<div class='caption'>Checked and failed, by group and severity</div>{frame_html(counts)}"
        )
        self._show()
        # Last, so that the message saying the checks are over comes once their findings show.
        failed = [f for f in findings if f.failed]
        text = summary(findings)
        if not failed:
            self.messages.success(text)
        elif any(f.severity in ("critical", "high") for f in failed):
            self.messages.error(text)
        else:
            self.messages.warning(text)

    def _show(self) -> None:
        with self.work.drawing:
            self._draw()

    def _draw(self) -> None:
        frame = findings_frame(self.findings)
        if self.status.value != ALL:
            frame = frame[frame["passed"] == (self.status.value == PASSED)]
        for control, column in ((self.severity, "severity"), (self.group, "group"), (self.check, "check_id")):
            if control.value != ALL:
                frame = frame[frame[column] == control.value]
        wanted = self.resource.value.strip().lower()
        if wanted:
            frame = frame[frame["resource"].str.lower().str.contains(wanted, regex=False)]
        self.shown = frame.reset_index(drop=True)
        if not self.findings:
            self.groups.value = ""
            return
        if frame.empty:
            self.groups.value = block("<div class='caption'>(no finding matches the filters)</div>")
            return
        by_id = {f.id: f for f in self.findings}
        sections = [
            _section(by_id[str(check_id)], rows, self._tally(str(check_id)))
            for check_id, rows in frame.groupby("check_id", sort=False)
        ]
        self.groups.value = block("".join(sections))

    def _tally(self, check_id: str) -> tuple[int, int]:
        mine = [f for f in self.findings if f.id == check_id]
        return sum(f.failed for f in mine), len(mine)

    def _busy(self, busy: bool) -> None:
        self.run_button.disabled = busy


def _section(finding: Finding, rows: pd.DataFrame, tally: tuple[int, int]) -> str:
    """One check: its rule, severity and counts as the folding line; remediation, references and rows inside."""
    failed, total = tally
    state = f"{failed} of {total} failed" if failed else f"all {total} passed"
    references = ", ".join(str(r) for r in finding.references)
    open_ = " open" if failed else ""
    return (
        f"<details{open_} class='check'><summary><b>{html.escape(finding.id)}</b> "
        f"<span class='sev-{html.escape(finding.severity)}'>{html.escape(finding.severity)}</span> "
        f"{html.escape(finding.title)} <span class='caption'>({state})</span></summary>"
        f"<div class='msg info'>fix: {html.escape(finding.remediation)}"
        f"{'<br>see also: ' + html.escape(references) if references else ''}</div>"
        f"<div class='scroll'>{frame_html(rows, ROW_COLUMNS)}</div></details>"
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


__all__ = ["PolicyReport"]
