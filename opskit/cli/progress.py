"""Drawing :class:`opskit.progress.ProgressEvent` in a terminal: stage lines, log lines, and a progress bar."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import click

from opskit.progress import ProgressEvent
from opskit.release.record import ReleaseRecord
from opskit.release.rollout import Following, Outcome, Rollout, Verdict

MARKS = {"started": "..", "done": "ok", "skipped": "--", "failed": "!!"}
BAR_WIDTH = 24


class TerminalProgress:
    """A progress reporter for the CLI; writes to stderr so stdout stays machine-readable (--format json)."""

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.tty = self.stream.isatty()
        self._bar_shown = False
        self._last_line = ""
        self._last_key = ""
        self._started = time.monotonic()

    def __call__(self, event: ProgressEvent) -> None:
        if event.state == "running":
            self._bar(event)
            return
        if event.state == "log" and not self.verbose:
            return
        self._clear_bar()
        if event.state == "log":
            self.stream.write(f"   {event.stage:>8} | {event.message.rstrip()}\n")
        else:
            elapsed = time.monotonic() - self._started
            self.stream.write(f"{MARKS.get(event.state, '  ')} {event.stage:>8}   {event.message}  [{elapsed:5.1f}s]\n")
        self.stream.flush()

    def _bar(self, event: ProgressEvent) -> None:
        if event.total:
            filled = int(BAR_WIDTH * min(1.0, (event.done or 0) / event.total))
            bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {event.done}/{event.total}"
        else:
            bar = ""
        eta = f" eta {event.eta:.0f}s" if event.eta is not None else ""
        line = f"   {event.stage:>8} {bar} {event.message}{eta}"
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(len(self._last_line)))
            self._bar_shown = True
            self._last_line = line
        else:
            # A log file gets a line per tenth of the work (or per new message), not one per update.
            step = (10 * (event.done or 0)) // event.total if event.total else None
            key = f"{event.stage}:{step}" if step is not None else f"{event.stage}:{event.message}"
            if key != self._last_key:
                self.stream.write(line + "\n")
                self._last_key = key
        self.stream.flush()

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.stream.write("\r" + " " * len(self._last_line) + "\r")
            self._bar_shown = False


def text_table(frame: Any) -> str:
    """A DataFrame as the terminal reads it best: left-aligned columns two spaces apart, a header, no index."""
    rows = [[str(c) for c in frame.columns], *([str(v) for v in row] for row in frame.itertuples(index=False))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def report_record(record: ReleaseRecord, output_format: str, *, ci: bool | None = None) -> None:
    """Print a release or rollback record (stdout) and, when it failed, its reason (stderr) and exit with the
    outcome's code (1 rolled back, 3 rollback failed, 4 stopped, 5 timed out). ``ci`` (None: as the environment
    says) also tells the CI system (:mod:`opskit.release.ci`)."""
    if ci is not False:
        import os

        from opskit.release.ci import detect, publish

        github_files = "GITHUB_STEP_SUMMARY" in os.environ or "GITHUB_OUTPUT" in os.environ
        publish(record, os.environ, system=detect(os.environ) or ("github" if ci and github_files else None))
    if output_format == "json":
        click.echo(record.to_json())
    else:
        click.echo(record.to_text())
    if not record.ok:
        click.echo(f"opskit: {record.kind} failed: {record.outcome}: {record.reason}", err=True)
        if record.cause:
            click.echo(f"opskit: cause: {record.cause}", err=True)
        sys.exit(record.exit_code)


def report_verdict(
    what: str, arn: str, verdict: Verdict, output_format: str, *, expected: Outcome = Outcome.COMPLETED
) -> None:
    """Print how a followed service deployment ended (stdout); unless it ended as ``expected`` (a rollback that was
    asked for, an abort), say why on stderr and exit with its outcome's code."""
    if output_format == "json":
        body = {"service_deployment_arn": arn, "outcome": verdict.outcome.value, "reason": verdict.reason}
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo(f"{verdict.outcome.value}: {verdict.reason}")
    if verdict.outcome not in (expected, Outcome.REACHED):
        click.echo(f"opskit: {what}: {verdict.outcome.value}: {verdict.reason}", err=True)
        sys.exit(verdict.outcome.exit_code or 1)


def follow_and_report(
    what: str,
    rollout: Rollout,
    output_format: str,
    following: Following,
    *,
    expected: Outcome,
) -> None:
    """Follow ``rollout`` as ``following`` says in the terminal, then report it (:func:`report_verdict`)."""
    verdict = rollout.follow(
        progress=TerminalProgress(),
        timeout=following.timeout,
        poll_interval=following.poll_interval,
        until=following.until,
    )
    report_verdict(what, rollout.arn, verdict, output_format, expected=expected)
