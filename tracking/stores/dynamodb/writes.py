"""Writes: item sizes, labelled transactions and batched puts with backoff."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from tracking.errors import InvalidInput

BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100
TRANSACTION_LIMIT = 100
#: Re-sends of ``UnprocessedItems`` before a batch gives up with ``StoreUnavailable``. With the
#: backoff below the worst case per chunk is about 4 s of sleeping.
UNPROCESSED_RETRY_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
#: Our bound on one item, under DynamoDB's 400 KB limit with room to spare. Items that grow
#: (the tag maps of models and versions) are checked against it before every write.
MAX_ITEM_BYTES = 350 * 1024


# -- item size ----------------------------------------------------------------------------------


def _value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value by DynamoDB's rules (see "DynamoDB item sizes and formats")."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(key.encode()) + _value_size(v) for key, v in data.items())
    if kind == "SS":
        return sum(len(element.encode()) for element in data)
    if kind == "NS":
        return sum(_number_size(element) for element in data)
    return sum(len(element) for element in data)  # BS


def _number_size(text: str) -> int:
    mantissa = text.lower().split("e")[0].lstrip("+-").replace(".", "")
    digits = len(mantissa.strip("0")) or 1
    return (digits + 1) // 2 + 1


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size DynamoDB counts for a serialized item: names plus values, in bytes."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _check_item_size(item: Mapping[str, Mapping[str, Any]], what: str) -> None:
    found = item_size(item)
    if found > MAX_ITEM_BYTES:
        raise InvalidInput(
            f"{what} would take {found} bytes in DynamoDB; the limit is {MAX_ITEM_BYTES} bytes "
            "per item (use fewer or shorter tags, metadata or signature entries)"
        )


# -- registry items ---------------------------------------------------------------------------


class _Writes:
    """The items of one TransactWriteItems, each with a label for its cancellation reason.

    pynamodb sends condition checks, then deletes, then puts, then updates, whatever order they
    were added in; DynamoDB reports one reason per item in request order, so the labels are
    sorted the same way.
    """

    _CHECK, _DELETE, _PUT, _UPDATE = range(4)

    def __init__(self) -> None:
        self._items: list[tuple[int, str, Callable[[TransactWrite], None]]] = []

    def check(self, label: str, model: Any, pk: str, sk: str, condition: Condition) -> None:
        def add(transaction: TransactWrite) -> None:
            transaction.condition_check(model, pk, sk, condition=condition)

        self._items.append((self._CHECK, label, add))

    def delete(self, label: str, item: Any, condition: Condition) -> None:
        def add(transaction: TransactWrite) -> None:
            transaction.delete(item, condition=condition)

        self._items.append((self._DELETE, label, add))

    def put(self, label: str, item: Any, condition: Condition | None) -> None:
        def add(transaction: TransactWrite) -> None:
            transaction.save(item, condition=condition)

        self._items.append((self._PUT, label, add))

    def update(self, label: str, item: Any, actions: list[Action], condition: Condition) -> None:
        def add(transaction: TransactWrite) -> None:
            transaction.update(item, actions=actions, condition=condition)

        self._items.append((self._UPDATE, label, add))

    def copy(self) -> _Writes:
        """The same writes, so one more can be added without changing these."""
        other = _Writes()
        other._items = list(self._items)
        return other

    def fill(self, transaction: TransactWrite) -> None:
        for _, _, add in self._items:
            add(transaction)

    def failed(self, codes: Sequence[str | None]) -> list[str]:
        """The labels of the items whose condition failed, in the order they were added."""
        if not codes:
            return []
        ordered = sorted(self._items, key=lambda entry: entry[0])
        failed = {
            label for (_, label, _), code in zip(ordered, codes, strict=True) if code is not None
        }
        return [label for _, label, _ in self._items if label in failed]
