"""The run filter language and ordering used by ``ExperimentLogger.search_runs``.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := atom ("and" atom)*
    atom       := "(" expr ")" | comparison
    comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
    field      := ("metrics" | "params" | "tags") "." key | ["attributes" "."] attribute
    attribute  := status | run_name | run_id | start_time | end_time
    op         := "=" | "==" | "!=" | "<>" | ">" | ">=" | "<" | "<=" | "like" | "ilike"
    value      := 'text' | "text" | number

Semantics (the reference evaluator is ``Comparison.__call__``; every store must agree with it):

- ``metrics.<key>`` is the run's latest value; a run without the key (a param, tag, metric, or
  a run without ``run_name``/``end_time``) never matches a comparison on it, ``!=`` and
  ``NOT IN`` included.
- Metrics, ``start_time`` and ``end_time`` are numbers; params, tags and the other attributes
  are text. A comparison is numeric when either side is a number (a number literal, or a numeric
  field); then the other side must be a number too: a text value parses with Python's
  ``float()`` (so ``'5'``, ``' 5 '``, ``'5e0'``, ``'inf'`` are numbers) and a value that does not
  parse, or parses to NaN, never matches, whatever the operator. (Before IN lists, such a value
  was compared as text with ``str(float(literal))``, e.g. ``'xgb' > 5`` was true; that has no
  exact SQL or DynamoDB translation and meant nothing, so it is now "no match".) Otherwise both
  sides are text and compare by code point (SQLite's ``BINARY`` collation, UTF-8 byte order).
- ``IN`` is true when ``=`` holds for one of the values; ``NOT IN`` when ``!=`` holds for every
  value (so a run lacking the key, or a text value against a list of numbers, never matches).
  A list holds numbers or quoted texts, not both, and metrics take numbers only.
- ``like``/``ilike``: ``%`` is any run of characters, ``_`` exactly one, everything else is
  literal (there is no escape character: ``\\%`` in a quoted pattern is still ``%``). ``like``
  is case-sensitive, ``ilike`` folds case with Python's Unicode rules (``re.IGNORECASE``). A
  number field matches as its Python text form, e.g. ``start_time`` 5 as ``'5.0'``.

Ordering (``sort_runs``): numbers (a parsable, non-NaN value) before texts ascending, numbers by
value and texts by code point; runs missing the key last in both directions; ``parse_order_by``
appends ``start_time DESC`` and ``run_id`` as tiebreakers, and runs that tie on every key keep
the order they were given in (``list_runs`` order: newest first, then ``run_id`` as raw text).
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, Union

from tracking.entities import RunRecord
from tracking.errors import InvalidInput

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) | (?P<comma>,) |
        (?P<op>==|!=|<>|>=|<=|=|>|<) |
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*") |
        (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])) |
        (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|[A-Za-z0-9_][A-Za-z0-9_.\-]*))?)
    )""",
    re.VERBOSE,
)
_ATTRIBUTES = {"status", "run_name", "run_id", "start_time", "end_time"}
_PREFIXES = {
    "metrics": "metrics", "metric": "metrics",
    "params": "params", "param": "params",
    "tags": "tags", "tag": "tags",
    "attributes": "attributes", "attribute": "attributes", "run": "attributes",
}  # fmt: skip
_OPS = {"=", "==", "!=", "<>", ">", ">=", "<", "<=", "like", "ilike"}
#: The list operators; ``Comparison.literal`` is then a tuple.
LIST_OPS = {"in", "not in"}
MAX_FILTER_LENGTH = 4000
#: Parentheses deeper than this are refused: the parser recurses once per level.
MAX_NESTING = 50


@dataclass(frozen=True)
class Field:
    kind: str  # metrics | params | tags | attributes
    key: str

    def value(self, run: RunRecord) -> str | float | None:
        if self.kind == "metrics":
            metric = run.metrics.get(self.key)
            return None if metric is None else metric.value
        if self.kind == "params":
            return run.params.get(self.key)
        if self.kind == "tags":
            return run.tags.get(self.key)
        raw = getattr(run, self.key)
        if raw is None:
            return None
        return float(raw) if self.key in {"start_time", "end_time"} else str(raw)


LiteralValue: TypeAlias = str | float | tuple[str, ...] | tuple[float, ...]


@dataclass(frozen=True)
class Comparison:
    """``field op literal``; for ``in``/``not in`` the literal is a non-empty tuple of one type."""

    field: Field
    op: str
    literal: LiteralValue

    def __call__(self, run: RunRecord) -> bool:
        actual = self.field.value(run)
        if actual is None:
            return False
        literal = self.literal
        if isinstance(literal, tuple):
            if self.op == "in":
                return any(compare(actual, "=", value) for value in literal)
            return all(compare(actual, "!=", value) for value in literal)
        if self.op in {"like", "ilike"}:
            return like_match(_text_form(actual), str(literal), self.op == "ilike")
        return compare(actual, self.op, literal)


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    parts: tuple[Predicate, ...]

    def __call__(self, run: RunRecord) -> bool:
        if self.op == "and":
            return all(part(run) for part in self.parts)
        return any(part(run) for part in self.parts)


Predicate = Union[Comparison, BoolOp]  # noqa: UP007  # a forward reference needs the Union form


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne, "<>": operator.ne,
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip


def as_number(value: str | float) -> float | None:
    """The number a field value or literal stands for, or ``None`` when it is not one.

    Text parses with Python's ``float()`` (surrounding whitespace, ``_`` separators, ``inf``);
    NaN counts as not a number, since it has no place in an order and equals nothing.
    """
    if isinstance(value, float):
        return None if math.isnan(value) else value
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def compare(actual: str | float, op: str, literal: str | float) -> bool:
    """One non-list, non-LIKE comparison of a present value (see the module docstring)."""
    if isinstance(actual, float) or isinstance(literal, float):
        left, right = as_number(actual), as_number(literal)
        if left is None or right is None:
            return False
        return _COMPARE[op](left, right)
    return _COMPARE[op](actual, literal)


def _text_form(value: str | float) -> str:
    """What LIKE matches against: text as is, a number as Python prints it (``5.0``)."""
    return value if isinstance(value, str) else str(value)


def like_match(text: str, pattern: str, ignore_case: bool) -> bool:
    """Whether ``text`` matches the whole LIKE ``pattern`` (``%`` any run, ``_`` one character)."""
    return _like_regex(pattern, ignore_case).fullmatch(text) is not None


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # Cached: a store evaluates one pattern against many values.
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.depth = 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        index = 0
        while index < len(text):
            if text[index:].strip() == "":
                break
            match = _TOKEN.match(text, index)
            if match is None or match.lastgroup is None:
                raise InvalidInput(f"filter: unexpected character at position {index}")
            tokens.append(
                (match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup))
            )
            index = match.end()
        return tokens

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise InvalidInput("filter: unexpected end of expression")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.expr()
        token = self.peek()
        if token is not None:
            raise InvalidInput(f"filter: unexpected {token[1]!r} at position {token[2]}")
        return predicate

    def expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Predicate:
        parts = [self.atom()]
        while self.keyword("and"):
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def atom(self) -> Predicate:
        kind, text, position = self.take()
        if kind == "lparen":
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise InvalidInput(
                    f"filter: parentheses nest deeper than {MAX_NESTING} at position {position}"
                )
            inner = self.expr()
            self.depth -= 1
            closing = self.take()
            if closing[0] != "rparen":
                raise InvalidInput(f"filter: expected ')' at position {closing[2]}")
            return inner
        if kind != "word":
            raise InvalidInput(f"filter: expected a field at position {position}, got {text!r}")
        field = parse_field(text)
        op_kind, op, op_position = self.take()
        op = op.lower()
        if op_kind == "word" and op == "not":
            if not self.keyword("in"):
                raise InvalidInput(f"filter: expected IN after NOT at position {op_position}")
            return self.in_list(field, "not in", op_position)
        if op_kind == "word" and op == "in":
            return self.in_list(field, "in", op_position)
        if op_kind not in {"op", "word"} or op not in _OPS:
            raise InvalidInput(f"filter: expected a comparison at position {op_position}")
        literal = self.value()
        if field.kind == "metrics" and not isinstance(literal, float):
            raise InvalidInput(f"filter: metrics.{field.key} compares with a number")
        if op in {"like", "ilike"} and not isinstance(literal, str):
            raise InvalidInput("filter: LIKE needs a quoted pattern")
        return Comparison(field, op, literal)

    def value(self) -> str | float:
        value_kind, value, value_position = self.take()
        if value_kind == "string":
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        if value_kind == "number":
            number = float(value)
            if not math.isfinite(number):
                raise InvalidInput(f"filter: number at position {value_position} is not finite")
            return number
        raise InvalidInput(f"filter: expected a quoted text or a number at {value_position}")

    def in_list(self, field: Field, op: str, position: int) -> Comparison:
        """``( value, ... )`` after IN / NOT IN: a non-empty list of numbers or of texts."""
        opening = self.peek()
        if opening is None or opening[0] != "lparen":
            where = opening[2] if opening is not None else len(self.text)
            raise InvalidInput(f"filter: expected '(' after {op.upper()} at position {where}")
        self.pos += 1
        closing = self.peek()
        if closing is not None and closing[0] == "rparen":
            raise InvalidInput(f"filter: empty {op.upper()} list at position {closing[2]}")
        values = [self.value()]
        while True:
            kind, text, at = self.take()
            if kind == "rparen":
                break
            if kind != "comma":
                raise InvalidInput(
                    f"filter: expected ',' or ')' in the {op.upper()} list at position {at}, "
                    f"got {text!r}"
                )
            values.append(self.value())
        numbers = tuple(v for v in values if isinstance(v, float))
        texts = tuple(v for v in values if isinstance(v, str))
        if numbers and texts:
            # One type per list: the comparison kind (numeric or text) is then the list's.
            raise InvalidInput(
                f"filter: the {op.upper()} list at position {position} mixes numbers and "
                "quoted texts"
            )
        if field.kind == "metrics" and texts:
            raise InvalidInput(f"filter: metrics.{field.key} compares with numbers")
        return Comparison(field, op, numbers or texts)


def parse_field(text: str) -> Field:
    prefix, _, key = text.partition(".")
    if not key:
        if text.lower() in _ATTRIBUTES:
            return Field("attributes", text.lower())
        raise InvalidInput(
            f"filter: unknown field {text!r}; use metrics.<key>, params.<key>, tags.<key> or "
            f"one of {', '.join(sorted(_ATTRIBUTES))}"
        )
    kind = _PREFIXES.get(prefix.lower())
    if kind is None:
        raise InvalidInput(f"filter: unknown field prefix {prefix!r}")
    key = key.strip("`")
    if kind == "attributes":
        if key.lower() not in _ATTRIBUTES:
            raise InvalidInput(f"filter: unknown run attribute {key!r}")
        key = key.lower()
    return Field(kind, key)


def parse_filter(text: str | None) -> Predicate | None:
    """Parse a filter expression.

    Raises:
        InvalidInput: the expression is malformed, saying where.
    """
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidInput(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    return _Parser(text).parse()


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool


def parse_order_by(clauses: Sequence[str] | None) -> list[OrderKey]:
    """Parse ``["metrics.auc DESC", "start_time"]``; the default is newest start first.

    Raises:
        InvalidInput: a clause is not ``<field> [ASC|DESC]``.
    """
    keys: list[OrderKey] = []
    for clause in clauses or ():
        if not isinstance(clause, str):
            raise InvalidInput("order_by takes a list of strings")
        words = clause.split()
        if not 1 <= len(words) <= 2 or (
            len(words) == 2 and words[1].upper() not in {"ASC", "DESC"}
        ):
            raise InvalidInput(f"order_by clause {clause!r}: expected '<field> [ASC|DESC]'")
        keys.append(OrderKey(parse_field(words[0]), len(words) == 2 and words[1].upper() == "DESC"))
    keys.append(OrderKey(Field("attributes", "start_time"), True))
    keys.append(OrderKey(Field("attributes", "run_id"), False))
    return keys


def sort_runs(runs: list[RunRecord], keys: Sequence[OrderKey]) -> list[RunRecord]:
    """Stable multi-key sort; runs missing a key come last whatever the direction."""
    ordered = list(runs)
    for key in reversed(keys):
        present = [run for run in ordered if key.field.value(run) is not None]
        missing = [run for run in ordered if key.field.value(run) is None]
        field = key.field
        present.sort(key=lambda run: _sortable(field.value(run)), reverse=key.descending)
        ordered = present + missing
    return ordered


def _sortable(value: str | float | None) -> tuple[int, float, str]:
    number = None if value is None else as_number(value)
    if number is not None:
        return (0, number, "")
    return (1, 0.0, str(value))
