"""Pagination as AWS does it: a page size limit per API, an opaque nextToken, a validated maxResults.

Tokens carry the position after the last item returned (not an offset), so items added or removed between
pages neither repeat nor vanish from the rest of the listing.

>>> items = [f"r{i:03}" for i in range(250)]
>>> page, token = paginate(items, key=str, max_results=None, next_token=None, default=100, limit=100, query="q")
>>> len(page), token is not None
(100, True)
>>> page2, _ = paginate(items, key=str, max_results=None, next_token=token, default=100, limit=100, query="q")
>>> page2[0]
'r100'
"""

from __future__ import annotations

import base64
import bisect
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opskit.sandbox.server.wire import ApiError, invalid_parameter

T = TypeVar("T")


def _encode(query: str, after: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"q": query, "a": after}).encode()).decode()


def _decode(token: str, query: str) -> Any:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["q"] != query:
            raise ValueError
        return data["a"]
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid_parameter(
            "Invalid nextToken: pass the nextToken of the previous page of this same listing."
        ) from exc


def paginate(
    items: Sequence[T],
    *,
    key: Callable[[T], Any],
    max_results: Any,
    next_token: str | None,
    default: int,
    limit: int,
    query: str,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """One page of ``items`` and the next token.

    ``items`` must be sorted ascending by ``key``; ``descending`` pages from the end. Finding where a token
    resumes is a binary search, so paging through 100,000 revisions costs no more per page than through 100.
    """
    if max_results is None:
        size = default
    elif isinstance(max_results, int) and not isinstance(max_results, bool) and 1 <= max_results <= limit:
        size = max_results
    else:
        raise invalid_parameter(f"maxResults must be between 1 and {limit}.")
    after = None
    if next_token:
        after = _decode(next_token, query)
        after = tuple(after) if isinstance(after, list) else after
    if descending:
        stop = len(items) if after is None else bisect.bisect_left(items, after, key=key)
        page = list(reversed(items[max(0, stop - size) : stop]))
        more = stop - size > 0
    else:
        start = 0 if after is None else bisect.bisect_right(items, after, key=key)
        page = list(items[start : start + size])
        more = start + size < len(items)
    token = _encode(query, key(page[-1])) if more and page else None
    return page, token


__all__ = ["ApiError", "paginate"]
