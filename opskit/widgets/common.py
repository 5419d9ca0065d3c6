"""What every panel shares: a message area, a progress view, a DataFrame view, and background work.

The views are plain ipywidgets (``HTML``, ``FloatProgress``), so they render in JupyterLab, Voila and in a saved
notebook's widget state, and can be driven headless in tests. Long work runs in a :class:`Background` thread that
reports through the progress protocol (:mod:`opskit.progress`); user errors (:class:`~opskit.errors.OpskitError`)
end as one line in the panel's :class:`MessageArea`, bugs as one line with the traceback folded under it.

>>> messages = MessageArea()
>>> work = Background(messages)
>>> work.start("count", lambda: 1 + 1, done=lambda n: messages.success(f"counted {n}"))
True
>>> work.wait(5)
>>> messages.text
'counted 2'
"""

from __future__ import annotations

import html
import re
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import ipywidgets as widgets
import pandas as pd

from opskit.errors import OpskitError
from opskit.progress import ProgressEvent
from opskit.widgets.style import block, style_sheet

T = TypeVar("T")
Kind = Literal["info", "success", "warning", "error"]


# -- messages -------------------------------------------------------------------------------------------------------
class MessageArea(widgets.HTML):  # type: ignore[misc]  # ipywidgets has no type hints
    """One message at a time (info, success, warning, error), or nothing. ``kind`` and ``text`` say what shows.

    ``fields`` names the panel's control for each command-line option its errors may mention
    (``{"--allow-dirty": "allow uncommitted changes"}``), so a user error reads in the panel's words.

    >>> MessageArea(fields={"--path": "git checkout"}).in_panel_words("x: pass --path with a folder")
    "x: fill in 'git checkout' with a folder"
    """

    def __init__(self, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(value="")
        self.kind: Kind | None = None
        self.text = ""
        self.fields = dict(fields or {})
        self.add_class("opskit-messages")

    def in_panel_words(self, text: str) -> str:
        """``text`` with each option the panel has a control for named as that control."""
        for option, label in sorted(self.fields.items(), key=lambda item: -len(item[0])):
            text = re.sub(rf"\b(pass|add|use) {re.escape(option)}(?![\w-])", f"fill in '{label}'", text)
            text = re.sub(rf"{re.escape(option)}(?![\w-])", f"'{label}'", text)
        return text

    def show(self, kind: Kind, text: str, detail: str | None = None) -> None:
        self.kind, self.text = kind, text
        body = html.escape(text)
        if detail:
            body = f"<details><summary>{body}</summary><pre>{html.escape(detail)}</pre></details>"
        self.value = block(f"<div class='msg {kind}'>{body}</div>")

    def info(self, text: str) -> None:
        self.show("info", text)

    def success(self, text: str) -> None:
        self.show("success", text)

    def warning(self, text: str) -> None:
        self.show("warning", text)

    def error(self, text: str) -> None:
        self.show("error", text)

    def failure(self, exc: BaseException) -> None:
        """What an exception from the panel's work says: a user error's one line (opskit.aws makes every AWS failure
        one); anything else is a bug, shown in one line with its traceback folded under it."""
        if isinstance(exc, OpskitError):
            self.error(exc.in_notebook or self.in_panel_words(str(exc)))
            return
        detail = "".join(traceback.format_exception(exc))
        text = " ".join(str(exc).split())
        self.show(
            "error", f"unexpected error (a bug in opskit, please report it): {type(exc).__name__}: {text}", detail
        )

    def clear(self) -> None:
        self.kind, self.text, self.value = None, "", ""


# -- background work ------------------------------------------------------------------------------------------------
class Background:
    """Runs one job at a time in a daemon thread, so a panel stays responsive while it works.

    ``on_busy(True/False)`` brackets each job (panels disable their buttons with it). A job's exception becomes
    a message (:meth:`MessageArea.failure`); nothing escapes the thread.

    ``done`` runs holding :attr:`drawing`, a lock the panel's observers take too when they redraw: a filter
    changed in the browser (the kernel's thread) while a job's results are drawn (this thread) would otherwise
    let the older drawing land last.
    """

    def __init__(self, messages: MessageArea, on_busy: Callable[[bool], None] | None = None) -> None:
        self.messages = messages
        self.on_busy = on_busy or (lambda busy: None)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.drawing = threading.RLock()
        self.job: str | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        name: str,
        job: Callable[[], T],
        done: Callable[[T], None] | None = None,
        failed: Callable[[Exception], None] | None = None,
    ) -> bool:
        """Start ``job`` (then ``done(result)``, or ``failed(exc)`` after its message shows) unless another job
        runs; False (and a message) if one does."""
        with self._lock:
            if self.busy:
                self.messages.warning(f"{self.job} is still running: wait for it to finish")
                return False
            self.job = name
            self.on_busy(True)
            self._thread = threading.Thread(
                target=self._run, args=(job, done, failed), name=f"opskit-{name}", daemon=True
            )
            self._thread.start()
            return True

    def _run(
        self, job: Callable[[], T], done: Callable[[T], None] | None, failed: Callable[[Exception], None] | None
    ) -> None:
        try:
            result = job()
            if done is not None:
                with self.drawing:
                    done(result)
        except Exception as exc:
            self.messages.failure(exc)
            if failed is not None:
                failed(exc)
        finally:
            self.on_busy(False)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current job ends; TimeoutError if it still runs after ``timeout`` seconds."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self.busy:
            raise TimeoutError(f"{self.job} still runs after {timeout} s")


def guard(messages: MessageArea, work: Callable[[], T]) -> T | None:
    """Run quick ``work`` on the caller's thread (a filter change, a selection) with Background's error handling."""
    try:
        return work()
    except Exception as exc:
        messages.failure(exc)
    return None


# -- progress -------------------------------------------------------------------------------------------------------
MARKS = {"started": "…", "running": "…", "done": "✓", "skipped": "-", "failed": "✗"}


@dataclass
class StageRow:
    state: str
    message: str
    started: float
    seconds: float | None = None


class ProgressView(widgets.VBox):  # type: ignore[misc]
    """The progress protocol drawn as a panel: one row per stage, a bar for counted work, and the log.

    It is a :data:`opskit.progress.Progress` callback: pass it as ``progress=`` to any apply or sync.

    >>> view = ProgressView()
    >>> view(ProgressEvent("build", "started", "building"))
    >>> view(ProgressEvent("build", "log", "Step 1/3 : FROM scratch"))
    >>> view.stages["build"].state, view.log_lines
    ('started', ['build | Step 1/3 : FROM scratch'])
    """

    def __init__(self, *, log_lines: int = 300) -> None:
        self.stages: dict[str, StageRow] = {}
        self.log_lines: list[str] = []
        self._log: deque[str] = deque(maxlen=log_lines)
        self._lock = threading.Lock()
        self.title = widgets.HTML("")
        self.table = widgets.HTML("")
        # The bar takes what the counts and the estimate leave: neither may push the other out of the row.
        self.bar = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="auto", flex="1 1 0%", min_width="120px")
        )
        self.bar_label = widgets.HTML("", layout=widgets.Layout(flex="0 0 auto", min_width="160px"))
        self.bar_row = widgets.HBox(
            [self.bar, self.bar_label], layout=widgets.Layout(display="none", width="100%", align_items="center")
        )
        self.log_view = widgets.HTML("")
        super().__init__([style_sheet(), self.title, self.table, self.bar_row, self.log_view])
        self.add_class("opskit-progress")

    def reset(self, title: str = "") -> None:
        with self._lock:
            self.stages.clear()
            self.log_lines.clear()
            self._log.clear()
            self.title.value = block(f"<b>{html.escape(title)}</b>") if title else ""
            self.table.value = self.log_view.value = ""
            self.bar_row.layout.display = "none"
            self.bar.value, self.bar.bar_style = 0.0, ""

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.state == "log":
                line = f"{event.stage} | {event.message.rstrip()}"
                self.log_lines.append(line)
                self._log.append(line)
                # column-reverse keeps the newest lines in view without any script.
                self.log_view.value = block(
                    "<div class='caption'>build log and service events</div>"
                    f"<div class='log'><pre>{html.escape(chr(10).join(self._log))}</pre></div>"
                )
                return
            row = self.stages.get(event.stage)
            now = time.monotonic()
            if row is None or event.state == "started":
                row = self.stages[event.stage] = StageRow(event.state, event.message, now)
            row.state = event.state
            if event.message:
                row.message = event.message
            if event.state in ("done", "failed", "skipped"):
                row.seconds = 0.0 if event.state == "skipped" else now - row.started
            if event.state == "running" and event.total:
                self._bar(event)
            elif event.state in ("done", "failed") and self.bar_row.layout.display != "none":
                self.bar.bar_style = "success" if event.state == "done" else "danger"
                if event.state == "done":
                    self.bar.value = 1.0
            self.table.value = block(self._table())

    def _bar(self, event: ProgressEvent) -> None:
        total = event.total or 1
        self.bar_row.layout.display = "flex"
        self.bar.bar_style = ""
        self.bar.value = min(1.0, (event.done or 0) / total)
        self.bar.description = event.stage
        eta = f", about {event.eta:.0f} s left" if event.eta is not None else ""
        self.bar_label.value = block(f"&nbsp;{event.done or 0}/{total}{eta}")

    def _table(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td class='state-{row.state}'>{MARKS.get(row.state, '')} {row.state}</td>"
            f"<td>{html.escape(row.message)}</td>"
            f"<td>{'' if row.seconds is None else f'{row.seconds:.1f} s'}</td></tr>"
            for name, row in self.stages.items()
        )
        return f"<table><tr><th>stage</th><th>state</th><th>what</th><th>took</th></tr>{rows}</table>"


# -- tables ---------------------------------------------------------------------------------------------------------
def cell(value: Any) -> str:
    """One value as table text: times to the minute (UTC), lists joined, maps as k=v, missing as '-'."""
    if isinstance(value, pd.Timestamp):
        return "-" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value is pd.NA or (isinstance(value, float) and value != value) or value is pd.NaT:
        return "-"
    return str(value)


def frame_html(frame: pd.DataFrame, columns: Sequence[str] | None = None, *, max_rows: int = 200) -> str:
    """``frame`` (the first ``max_rows`` rows) as an escaped HTML table."""
    shown = frame if columns is None else frame[list(columns)]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
        for row in shown.head(max_rows).itertuples(index=False, name=None)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class FrameView(widgets.HTML):  # type: ignore[misc]
    """A DataFrame as a scrollable HTML table with a caption; ``frame`` holds what it shows."""

    def __init__(self, *, max_rows: int = 200, empty: str = "(no rows)") -> None:
        super().__init__(value="")
        self.max_rows = max_rows
        self.empty = empty
        self.frame: pd.DataFrame | None = None
        self.layout.width = "100%"
        self.add_class("opskit-table")

    def show(self, frame: pd.DataFrame, columns: Sequence[str] | None = None, caption: str = "") -> None:
        self.frame = frame if columns is None else frame[list(columns)]
        more = (
            f" (the first {self.max_rows} of {len(frame)} shown: narrow it down)" if len(frame) > self.max_rows else ""
        )
        head = f"<div class='caption'>{html.escape(caption + more)}</div>" if caption or more else ""
        if frame.empty:
            self.value = block(f"{head}<div class='caption'>{html.escape(self.empty)}</div>")
            return
        self.value = block(f"{head}<div class='scroll'>{frame_html(self.frame, max_rows=self.max_rows)}</div>")

    def clear(self) -> None:
        self.frame, self.value = None, ""


def diff_html(lines: Sequence[str]) -> str:
    """A unified diff, coloured."""
    if not lines:
        return "<pre>(no change: the new revision is the live one)</pre>"
    out = []
    for line in lines:
        kind = (
            "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else ""
        )
        out.append(f"<span class='{kind}'>{html.escape(line)}</span>" if kind else html.escape(line))
    return f"<pre>{chr(10).join(out)}</pre>"


__all__ = [
    "Background",
    "FrameView",
    "MessageArea",
    "ProgressView",
    "cell",
    "diff_html",
    "frame_html",
    "guard",
]
