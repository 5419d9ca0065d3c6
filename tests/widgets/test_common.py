"""The pieces every panel shares: messages, background work, the progress view, tables and diffs."""

from __future__ import annotations

import socket
import threading

import pandas as pd
import pytest

from opskit.aws import Aws
from opskit.errors import ConfigError
from opskit.progress import ProgressEvent
from opskit.widgets.common import Background, FrameView, MessageArea, ProgressView, cell, diff_html


def test_a_user_error_is_one_line_and_a_bug_folds_its_traceback() -> None:
    messages = MessageArea()
    work = Background(messages)

    def refuse() -> None:
        raise ConfigError("SHA length 3 is out of range:\n pass a length from 7 to 40")

    work.start("planning", refuse)
    work.wait(5)
    assert (messages.kind, messages.text) == ("error", "SHA length 3 is out of range: pass a length from 7 to 40")
    assert "Traceback" not in messages.value

    def crash() -> None:
        raise KeyError("taskDefinition")

    work.start("planning", crash)
    work.wait(5)
    assert messages.kind == "error"
    assert messages.text.startswith("unexpected error (a bug in opskit, please report it): KeyError:")
    assert "<details><summary>" in messages.value and "Traceback (most recent call last)" in messages.value


def test_an_aws_failure_shows_as_the_boundarys_one_line() -> None:
    messages = MessageArea()
    work = Background(messages)
    with socket.socket() as free:  # a loopback port nothing listens on
        free.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{free.getsockname()[1]}"
    aws = Aws(region="us-east-1", endpoint_url=endpoint, max_attempts=1, access_key_id="a", secret_access_key="b")

    work.start("the sync", lambda: aws.client("ecs").list_clusters())
    work.wait(30)
    assert messages.kind == "error"
    assert messages.text.startswith("cannot reach AWS (Could not connect to the endpoint URL"), messages.text
    assert "check the region, the endpoint URL and the network" in messages.text
    assert "\n" not in messages.text and "Traceback" not in messages.value


def test_one_job_at_a_time_and_the_caller_is_never_blocked() -> None:
    messages, busy = MessageArea(), []
    work = Background(messages, busy.append)
    release, entered = threading.Event(), threading.Event()
    ran: list[object] = []

    def job() -> None:
        ran.append(threading.current_thread())
        entered.set()
        ran.append(release.wait(30))  # True only when the caller, not the timeout, let it go

    assert work.start("the release", job)
    # start() came back while the job is still inside it: a start() that waited for the job would find it done.
    assert entered.wait(30) and len(ran) == 1 and ran[0] is not threading.current_thread()
    assert work.busy and busy == [True]
    assert not work.start("the rollback", lambda: ran.append("the rollback ran"))
    assert messages.text == "the release is still running: wait for it to finish"
    with pytest.raises(TimeoutError, match="the release still runs"):
        work.wait(0.05)
    assert len(ran) == 1 and work.busy
    release.set()
    work.wait(30)
    assert ran[1:] == [True], "the job ended because the caller released it, and the refused job never ran"
    assert busy == [True, False] and not work.busy


def test_progress_view_draws_stages_counts_and_the_log() -> None:
    view = ProgressView()
    view.reset("Releasing 3f2a9c1b2d4e to prod/web")
    view(ProgressEvent("build", "started", "building Dockerfile"))
    view(ProgressEvent("build", "log", "Step 1/3 : FROM scratch"))
    view(ProgressEvent("build", "done", "built"))
    view(ProgressEvent("push", "skipped", "reusing sha256:abc"))
    view(ProgressEvent("wait", "started", "waiting"))
    view(ProgressEvent("wait", "running", "1/2 running", done=1, total=2, eta=12.4))
    assert view.bar_row.layout.display == "flex" and view.bar.value == 0.5
    assert "1/2, about 12 s left" in view.bar_label.value
    view(ProgressEvent("wait", "log", "(service web) has reached a steady state."))
    view(ProgressEvent("wait", "failed", "the circuit breaker rolled it back"))
    assert {name: row.state for name, row in view.stages.items()} == {
        "build": "done",
        "push": "skipped",
        "wait": "failed",
    }
    assert view.stages["build"].seconds is not None and view.stages["push"].seconds == 0.0
    assert view.log_lines == ["build | Step 1/3 : FROM scratch", "wait | (service web) has reached a steady state."]
    assert view.bar.bar_style == "danger"
    assert "the circuit breaker rolled it back" in view.table.value
    view.reset()
    assert view.stages == {} and view.log_lines == [] and view.bar_row.layout.display == "none"


def test_frame_view_escapes_formats_and_caps_rows() -> None:
    frame = pd.DataFrame(
        {
            "family": ["<web>", "api", "worker"],
            "registered_at": pd.to_datetime(["2026-01-02 03:04:05", None, "2026-01-03 00:00:00"], utc=True),
            "names": [["A", "B"], [], ["C"]],
            "tags": [{"commit": "abc"}, {}, {}],
        }
    )
    view = FrameView(max_rows=2)
    view.show(frame, caption="Revisions")
    assert "&lt;web&gt;" in view.value and "<web>" not in view.value
    assert "2026-01-02 03:04" in view.value and "A, B" in view.value and "commit=abc" in view.value
    assert "the first 2 of 3 shown" in view.value and "worker" not in view.value
    view.show(frame.iloc[0:0], caption="Revisions")
    assert "(no rows)" in view.value
    assert [cell(v) for v in (None, pd.NA, float("nan"), True, ("a", "b"))] == ["-", "-", "-", "yes", "a, b"]


def test_diff_is_coloured_line_by_line() -> None:
    shown = diff_html(["--- web:30", "+++ web:new", "@@ -1 +1 @@", '-  "image": "a"', '+  "image": "b"', "   same"])
    assert "<span class='add'>+  &quot;image&quot;: &quot;b&quot;</span>" in shown
    assert "<span class='del'>-  &quot;image&quot;: &quot;a&quot;</span>" in shown
    assert "<span class='hunk'>" in shown
    assert "no change" in diff_html([])
