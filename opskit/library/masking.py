"""Masking a task definition's values: :mod:`opskit.masking`, where the release path reads it without the library."""

from opskit.masking import MASK, mask

__all__ = ["MASK", "mask"]
