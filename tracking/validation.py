"""The one allow-list for names and the limits on values, checked before anything is written."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from tracking.errors import InvalidInput

#: Every dot is followed by another allowed character or ends the name, so ``..`` cannot occur:
#: the OpenAPI schema (which carries this pattern) then refuses what the SDK refuses. The length
#: is checked apart (``MAX_NAME`` here, ``maxLength`` in the schema).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_](?:\.?[A-Za-z0-9_\-])*\.?$")
MAX_NAME = 128
NAME_RULE = (
    "1-128 characters from A-Z a-z 0-9 _ . -, starting with a letter, digit or underscore, "
    "without '..'"
)
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 6000
MAX_STEP = 10**15


def validate_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a valid name (experiment, run, key, artifact, model, alias).

    Raises:
        InvalidInput: the value is not a string, is too long, has a character outside the
            allow-list, or contains ``..`` (so it can never escape a folder or S3 prefix).
    """
    # fullmatch, not match: the pattern's "$" also matches before a trailing newline, which
    # let "model\n" through as a name (and into a file name or an S3 key).
    if (
        not isinstance(value, str)
        or len(value) > MAX_NAME
        or not NAME_PATTERN.fullmatch(value)
        or ".." in value
    ):
        shown = value if isinstance(value, str) and len(value) <= 64 else "<value>"
        raise InvalidInput(f"invalid {what} {shown!r}: use {NAME_RULE}")
    return value


def validate_param_value(key: str, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInput(
            f"param {key!r} value has {len(text)} characters; the limit is {MAX_PARAM_VALUE}"
        )
    return text


def validate_tag_value(key: str, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidInput(
            f"tag {key!r} value has {len(text)} characters; the limit is {MAX_TAG_VALUE}"
        )
    return text


def validate_metric_value(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            number = float(value)  # type: ignore[arg-type]  # numpy scalars and friends
        except (TypeError, ValueError):
            raise InvalidInput(f"metric {key!r} value must be a number") from None
    else:
        number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(f"metric {key!r} value must be finite (NaN and Infinity are refused)")
    return number


def validate_step(key: str, step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise InvalidInput(f"metric {key!r} step must be an integer from 0 to {MAX_STEP}")
    return step


def validate_timestamp(key: str, timestamp: object) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise InvalidInput(f"metric {key!r} timestamp must be non-negative integer milliseconds")
    return timestamp


def validate_params(params: Mapping[str, object]) -> dict[str, str]:
    return {
        validate_name(key, "param key"): validate_param_value(key, value)
        for key, value in params.items()
    }


def validate_tags(tags: Mapping[str, object]) -> dict[str, str]:
    return {
        validate_name(key, "tag key"): validate_tag_value(key, value) for key, value in tags.items()
    }
