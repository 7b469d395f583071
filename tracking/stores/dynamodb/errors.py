"""DynamoDB, pynamodb and botocore failures translated into ``tracking.errors``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from tracking.errors import StoreUnavailable, TrackingError

_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)


# -- error translation ------------------------------------------------------------------------


def _error_field(error: BaseException, name: str) -> str | None:
    """``Error.Code`` / ``Error.Message`` of the service's answer, if there was one.

    Not pynamodb's ``cause_response_code``: it assumes ``cause.response`` is a dict, but a
    ``ReadTimeoutError`` carries ``response = None`` (from requests), which made it raise
    ``AttributeError`` instead of the ``StoreUnavailable`` a timeout is.
    """
    cause = error.cause if isinstance(error, PynamoDBException) else error
    response = getattr(cause, "response", None)
    if not isinstance(response, dict):
        return None
    value = response.get("Error", {}).get(name)
    return str(value) if value else None


def _error_code(error: BaseException) -> str | None:
    return _error_field(error, "Code")


def _is_conditional_failure(error: PynamoDBException) -> bool:
    return _error_code(error) == "ConditionalCheckFailedException"


def _unavailable(action: str, error: BaseException) -> StoreUnavailable:
    """Describe a DynamoDB failure in one line, without the request payload or a traceback."""
    code = _error_code(error)
    cause = error.cause if isinstance(error, PynamoDBException) else error
    if code in _THROTTLING_CODES:
        return StoreUnavailable(f"DynamoDB throttled {action} after retries; try again later")
    if code == "ResourceNotFoundException":
        return StoreUnavailable(
            f"DynamoDB {action} failed: a table does not exist; run `tracking init` first"
        )
    if code:
        message = _error_field(error, "Message") or ""
        return StoreUnavailable(f"DynamoDB {action} failed: {code}: {message}".rstrip(": "))
    if isinstance(cause, BotoCoreError):
        # Connection errors and timeouts: botocore's message names the endpoint, which helps.
        return StoreUnavailable(f"DynamoDB {action} failed: {cause}")
    return StoreUnavailable(f"DynamoDB {action} failed: {type(cause).__name__}")


@contextmanager
def _calling(action: str) -> Iterator[None]:
    """Turn any pynamodb/botocore failure inside the block into ``StoreUnavailable``."""
    try:
        yield
    except TrackingError:
        raise
    except (PynamoDBException, BotoCoreError, ClientError) as error:
        raise _unavailable(action, error) from error


class Outcome:
    """What a ``conditional_write`` block came to: ``failed`` when its condition did not hold."""

    failed = False


@contextmanager
def conditional_write(action: str) -> Iterator[Outcome]:
    """Run one conditional put, update or delete; a failed condition is an answer, not an error.

    ``outcome.failed`` tells the caller, after the block, that DynamoDB refused the write on
    its condition (nothing was written); every other failure is ``StoreUnavailable``::

        with conditional_write("create experiment") as outcome:
            item.save(condition=model.pk.does_not_exist())
        if outcome.failed:
            raise AlreadyExists(...)
    """
    outcome = Outcome()
    try:
        yield outcome
    except TrackingError:
        raise
    except PynamoDBException as error:
        if not _is_conditional_failure(error):
            raise _unavailable(action, error) from error
        outcome.failed = True
    except (BotoCoreError, ClientError) as error:
        raise _unavailable(action, error) from error
