"""The run filter language and ordering used by ``ExperimentLogger.search_runs``.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := atom ("and" atom)*
    atom       := "(" expr ")" | comparison
    comparison := field op value
    field      := ("metrics" | "params" | "tags") "." key | ["attributes" "."] attribute
    attribute  := status | run_name | run_id | start_time | end_time
    op         := "=" | "==" | "!=" | "<>" | ">" | ">=" | "<" | "<=" | "like" | "ilike"
    value      := 'text' | "text" | number

``metrics.<key>`` is the run's latest value; a run without the key never matches a comparison
on it. Params and tags compare as text, or as numbers when both sides are numbers.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

from tracking.entities import RunRecord
from tracking.errors import InvalidInput

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
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
MAX_FILTER_LENGTH = 4000


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


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str
    literal: str | float

    def __call__(self, run: RunRecord) -> bool:
        actual = self.field.value(run)
        if actual is None:
            return False
        if self.op in {"like", "ilike"}:
            return _like(str(actual), str(self.literal), self.op == "ilike")
        numbers = _as_numbers(actual, self.literal)
        if numbers is not None:
            return _COMPARE[self.op](*numbers)
        return _COMPARE[self.op](str(actual), str(self.literal))


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


def _as_numbers(actual: str | float, literal: str | float) -> tuple[float, float] | None:
    """Both sides as numbers when either is a number and both parse; else compare as text."""
    if isinstance(actual, float) or isinstance(literal, float):
        try:
            return float(actual), float(literal)
        except ValueError:
            return None
    return None


def _like(text: str, pattern: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return (
        re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)
        is not None
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0

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
            inner = self.expr()
            closing = self.take()
            if closing[0] != "rparen":
                raise InvalidInput(f"filter: expected ')' at position {closing[2]}")
            return inner
        if kind != "word":
            raise InvalidInput(f"filter: expected a field at position {position}, got {text!r}")
        field = parse_field(text)
        op_kind, op, op_position = self.take()
        op = op.lower()
        if op_kind not in {"op", "word"} or op not in _OPS:
            raise InvalidInput(f"filter: expected a comparison at position {op_position}")
        value_kind, value, value_position = self.take()
        literal: str | float
        if value_kind == "string":
            literal = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif value_kind == "number":
            literal = float(value)
            if not math.isfinite(literal):
                raise InvalidInput(f"filter: number at position {value_position} is not finite")
        else:
            raise InvalidInput(f"filter: expected a quoted text or a number at {value_position}")
        if field.kind == "metrics" and not isinstance(literal, float):
            raise InvalidInput(f"filter: metrics.{field.key} compares with a number")
        if op in {"like", "ilike"} and not isinstance(literal, str):
            raise InvalidInput("filter: LIKE needs a quoted pattern")
        return Comparison(field, op, literal)


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
    if isinstance(value, float):
        return (0, value, "")
    try:
        return (0, float(value or ""), "")
    except ValueError:
        return (1, 0.0, str(value))
