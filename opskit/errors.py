"""The one exception family for errors a user can cause.

Each message is one line that says what went wrong and what to do about it; tracebacks are for bugs.

>>> raise ConfigError("--port must be between 0 and 65535: pass a free port, or 0 for any")
Traceback (most recent call last):
...
opskit.errors.ConfigError: --port must be between 0 and 65535: pass a free port, or 0 for any
"""

from __future__ import annotations


class OpskitError(Exception):
    """An error the user can fix; its message is one line that says how."""

    def __init__(self, message: str) -> None:
        # One line, always: multi-line messages break the CLI's contract and log scrapers.
        super().__init__(" ".join(message.split()))

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
    """An AWS call failed for a reason the user can act on (credentials, region, permissions)."""
