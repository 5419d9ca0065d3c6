"""opskit: immutable releases for Amazon ECS.

One commit -> one image tagged with the commit SHA -> one task-definition revision -> one service deployment,
with rollback always possible and old revisions cleaned up without ever breaking it.
"""

from opskit.errors import OpskitError

__all__ = ["OpskitError", "__version__"]
__version__ = "0.1.0"
