"""The one paging helper: a page of a Query, with one item more to know whether more follow."""

from __future__ import annotations

from typing import Any

from tracking.stores.dynamodb.errors import _calling


def query_page(
    model: Any,
    hash_key: str,
    range_condition: Any = None,
    *,
    action: str,
    limit: int,
    start_key: dict[str, dict[str, Any]] | None = None,
    **options: Any,
) -> list[Any]:
    """Up to ``limit + 1`` items of one Query from ``start_key`` (pynamodb follows 1 MB pages).

    Asking for one more than the page tells whether another page exists, so an exactly full
    last page carries no token (and no empty page follows). ``options`` are pynamodb's
    (``index_name``, ``consistent_read``, ``scan_index_forward``).

    Raises:
        StoreUnavailable: DynamoDB failed.
    """
    with _calling(action):
        return list(
            model.query(
                hash_key,
                range_condition,
                limit=limit + 1,
                last_evaluated_key=start_key,
                **options,
            )
        )
