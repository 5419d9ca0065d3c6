"""The one exception family for errors a user can cause.

Each message is one line that says what went wrong and what to do about it; tracebacks are for bugs.

>>> raise ConfigError("--port must be between 0 and 65535: pass a free port, or 0 for any")
Traceback (most recent call last):
...
opskit.errors.ConfigError: --port must be between 0 and 65535: pass a free port, or 0 for any
"""

from __future__ import annotations


class OpskitError(Exception):
    """An error the user can fix; its message is one line that says how.

    ``in_notebook`` is the same advice in the words of a notebook's user, where the message's own (a command's
    option, an environment variable of the shell) is nothing they can act on from a panel.
    """

    def __init__(self, message: str, *, in_notebook: str | None = None) -> None:
        # One line, always: multi-line messages break the CLI's contract and log scrapers.
        super().__init__(" ".join(message.split()))
        self.in_notebook = " ".join(in_notebook.split()) if in_notebook else None

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(OpskitError):
    """Bad options or settings."""


class NotFoundError(OpskitError):
    """A cluster, service, family, repository or image that does not exist."""


class ConflictError(OpskitError):
    """The world changed under us, or someone else is acting on the same thing."""


class DockerUnavailableError(OpskitError):
    """No Docker engine could be reached."""


class AwsError(OpskitError):
    """An AWS call failed for a reason the user can act on (credentials, region, permissions), in one line.

    Raised by :mod:`opskit.aws` for every failure of a call; code that decides on one AWS answer reads ``code``
    (AWS's error code, such as ``ServiceNotFoundException``) and ``aws_message`` instead of catching botocore's types.
    ``transient`` is true where AWS throttled or failed on its side and botocore's retries ran out.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        operation: str | None = None,
        aws_message: str = "",
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.aws_message = aws_message
        self.transient = transient
