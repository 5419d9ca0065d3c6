"""ECR's wildcard filters (tag-mutability exclusion filters, lifecycle ``tagPatternList``) against commit SHA tags.

A filter is literal text where ``*`` matches any run of characters (not a regular expression). Whether a filter
*can* match a commit SHA tag (7 to 40 lowercase hex digits) is decided from the filter alone, so a repository is
judged on the tags it will get, not only on those it has.

>>> wildcard_matches("release-*", "release-42"), wildcard_matches("*", "")
(True, True)
>>> can_match_commit_sha("a1*"), can_match_commit_sha("v*"), can_match_commit_sha("latest")
(True, False, False)
>>> matches_every_commit_sha("*"), matches_every_commit_sha("*a*")
(True, False)
"""

from __future__ import annotations

import re
from functools import lru_cache

HEX = frozenset("0123456789abcdef")
SHA_MIN, SHA_MAX = 7, 40


@lru_cache(maxsize=1024)
def _pattern(wildcard: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in wildcard.split("*")), re.DOTALL)


def wildcard_matches(wildcard: str, text: str) -> bool:
    """``*`` matches any run of characters (none included); everything else is literal and case-sensitive."""
    return _pattern(wildcard).fullmatch(text) is not None


def can_match_commit_sha(wildcard: str) -> bool:
    """Some commit SHA tag (7 to 40 lowercase hex digits) matches ``wildcard``."""
    literal = wildcard.replace("*", "")
    if not set(literal) <= HEX:
        return False
    if "*" not in wildcard:
        return SHA_MIN <= len(wildcard) <= SHA_MAX
    return len(literal) <= SHA_MAX  # the stars stretch it to any length from there


def matches_every_commit_sha(wildcard: str) -> bool:
    """Every commit SHA tag matches ``wildcard``: only a filter made of stars does."""
    return bool(wildcard) and set(wildcard) == {"*"}


__all__ = ["can_match_commit_sha", "matches_every_commit_sha", "wildcard_matches"]
