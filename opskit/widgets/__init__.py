"""Runbook widgets: thin views over opskit's plans, their apply, and the revision library.

No widget calls AWS: each builds plans (or reads the library) through opskit's own functions, which go through
:class:`opskit.aws.Aws`. Long work runs in a background thread and reports through :mod:`opskit.progress`; a user
error shows as one line in the panel.

>>> from opskit.widgets import ReleasePanel, RevisionBrowser, session
>>> here = session.connect()          # the embedded sandbox; or connect("aws", profile=...)  # doctest: +SKIP
>>> ReleasePanel(here.aws, cluster="demo", service="web", path=here.demo_app())                    # doctest: +SKIP
>>> RevisionBrowser(here.library(), sync=True)                                                      # doctest: +SKIP
>>> PolicyReport(here.library(), run=True, clock=here.clock)                                        # doctest: +SKIP
>>> CleanupPanel(here.library(), keep=10, clock=here.clock, rate_scale=here.time_scale)             # doctest: +SKIP
"""

from opskit.widgets import session
from opskit.widgets.browser import RevisionBrowser
from opskit.widgets.cleanup import CleanupPanel
from opskit.widgets.common import Background, FrameView, MessageArea, ProgressView
from opskit.widgets.policy import PolicyReport
from opskit.widgets.release import ReleasePanel

__all__ = [
    "Background",
    "CleanupPanel",
    "FrameView",
    "MessageArea",
    "PolicyReport",
    "ProgressView",
    "ReleasePanel",
    "RevisionBrowser",
    "session",
]
