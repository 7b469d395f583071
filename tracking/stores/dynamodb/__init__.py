"""The AWS backend: DynamoDB via pynamodb (``DynamoDBStore``).

``schema`` (the table declaration) imports neither boto3 nor pynamodb, so ``tracking init`` and
the template checks read it cheaply; the store itself is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracking.stores.dynamodb.store import DynamoDBStore

__all__ = ["DynamoDBStore"]


def __getattr__(name: str) -> Any:
    if name == "DynamoDBStore":
        from tracking.stores.dynamodb.store import DynamoDBStore

        return DynamoDBStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
