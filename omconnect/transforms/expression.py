"""Row expressions (``amount > 0 and status in ('paid', 'shipped')``) compiled to Arrow compute.

The text is rewritten from its SQL flavour (``expression_syntax``), parsed with Python's
``ast`` in ``eval`` mode and compiled into a tree of ``pyarrow.compute`` calls: evaluating an
expression over a batch is a handful of vectorised kernels, never a Python loop over rows and
never ``eval``.

The language:

- literals: strings, integers, floats, ``true``/``false``, ``null``;
- column names (backtick-quote names that are not identifiers: `` `order id` ``);
- comparisons ``== != < <= > >=`` (also ``=`` and ``<>``), chained (``0 < x <= 10``);
- ``and``, ``or``, ``not`` with SQL's three-valued logic;
- ``+ - * / %`` and unary minus; ``/`` of two integers is a true (float) division, ``%`` is
  the remainder with the sign of the dividend (as in SQL), and a zero divisor gives null;
- ``x in (a, b)`` / ``x not in (...)`` with literals (null when ``x`` is null);
- ``x is null`` / ``x is not null``;
- functions ``lower(s)``, ``upper(s)``, ``length(s)``, ``starts_with(s, 'p')``,
  ``ends_with(s, 'p')``, ``contains(s, 'p')``, ``coalesce(a, b, ...)``.

A string literal compared with a timestamp, date, time or decimal column is read as a value
of the column's type (``ts >= '2024-01-01T00:00:00'``; a zone-less text compared with a zoned
column is read as UTC).
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from omconnect.connectors.api.errors import ConfigError
from omconnect.transforms.expression_syntax import PythonSyntax, to_python_syntax

Value: TypeAlias = pa.Array | pa.Scalar
Evaluator: TypeAlias = Callable[[pa.RecordBatch], Value]

_COMPARISONS: dict[type[ast.cmpop], str] = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
_ARITHMETIC: dict[type[ast.operator], str] = {
    ast.Add: "add_checked",
    ast.Sub: "subtract_checked",
    ast.Mult: "multiply_checked",
}
_STRING_FUNCTIONS = {"lower": "utf8_lower", "upper": "utf8_upper"}
_PATTERN_FUNCTIONS = {
    "starts_with": "starts_with",
    "ends_with": "ends_with",
    "contains": "match_substring",
}
_FUNCTIONS = sorted([*_STRING_FUNCTIONS, *_PATTERN_FUNCTIONS, "length", "coalesce"])


@dataclass(frozen=True)
class Expression:
    """A compiled row expression.

    Attributes:
        text: the expression as the user wrote it.
        columns: the column names it reads -> where each is first read (1-based position).
    """

    text: str
    columns: dict[str, int]
    _evaluate: Evaluator

    def check_columns(self, names: Sequence[str], key: str | None = None) -> None:
        """Raise ``ConfigError`` (with a did-you-mean) for a column not in ``names``."""
        for column, position in self.columns.items():
            if column not in names:
                close = difflib.get_close_matches(column, list(names), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                message = f'{self.text!r}: unknown column "{column}" at position {position}{hint}'
                raise ConfigError(f"{message}; columns: {', '.join(names)}", key)

    def evaluate(self, values: pa.RecordBatch) -> pa.Array:
        """The expression's value for every row of ``values`` (scalars are broadcast).

        Raises:
            ConfigError: a column is missing or an operation does not apply to the types.
        """
        self.check_columns(values.schema.names)
        result = self._evaluate(values)
        if isinstance(result, pa.Scalar):
            return pa.repeat(result, values.num_rows)
        return result

    def condition(self, values: pa.RecordBatch) -> pa.BooleanArray:
        """Like ``evaluate``, but the expression must be a condition (a boolean)."""
        result = self.evaluate(values)
        if not pa.types.is_boolean(result.type) and not pa.types.is_null(result.type):
            raise ConfigError(f"{self.text!r} is not a condition: its values are {result.type}")
        return result.cast(pa.bool_())


def parse_expression(text: str) -> Expression:
    """Compile ``text`` (see the module docstring for the language).

    Raises:
        ConfigError: for a syntax error or an unsupported construct, naming the position.
    """
    if not text.strip():
        raise ConfigError("the expression is empty")
    syntax = to_python_syntax(text)
    try:
        tree = ast.parse(syntax.text, mode="eval")
    except SyntaxError as exc:
        where = syntax.origin[min(max((exc.offset or 1) - 1, 0), len(syntax.origin) - 1)]
        reason = exc.msg.split(" (")[0]
        raise ConfigError(f"{text!r}: {reason} at position {where + 1}") from None
    compiler = _Compiler(text, syntax)
    evaluate = compiler.compile(tree.body)
    return Expression(text, compiler.columns, evaluate)


class _Compiler:
    """Turns ``ast`` nodes into evaluators; remembers the columns they read."""

    def __init__(self, text: str, syntax: PythonSyntax) -> None:
        self.text = text
        self.syntax = syntax
        self.columns: dict[str, int] = {}

    def fail(self, node: ast.AST, message: str, suffix: str = "") -> ConfigError:
        where = self.syntax.original_index(getattr(node, "col_offset", 0))
        return ConfigError(f"{self.text!r}: {message} at position {where + 1}{suffix}")

    def source(self, node: ast.expr) -> str:
        start = self.syntax.original_index(node.col_offset)
        end = self.syntax.original_index(node.end_col_offset or node.col_offset)
        return self.text[start:end] or self.text[start : start + 1]

    def guarded(self, node: ast.expr, evaluate: Evaluator) -> Evaluator:
        """Report an Arrow type or value error as a ``ConfigError`` naming ``node``."""

        def run(values: pa.RecordBatch) -> Value:
            try:
                return evaluate(values)
            except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid) as exc:
                detail = str(exc).split("\n")[0]
                raise self.fail(node, f"cannot evaluate {self.source(node)!r}: {detail}") from exc

        return run

    def compile(self, node: ast.expr) -> Evaluator:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._column(node)
        if isinstance(node, ast.BoolOp):
            parts = [self.compile(v) for v in node.values]
            kernel = pc.and_kleene if isinstance(node.op, ast.And) else pc.or_kleene
            return self.guarded(node, lambda b: _fold(kernel, [p(b) for p in parts]))
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self.fail(node, f"unsupported syntax {self.source(node)!r}")

    def _constant(self, node: ast.Constant) -> Evaluator:
        if node.value is not None and not isinstance(node.value, str | int | float | bool):
            raise self.fail(node, f"unsupported literal {self.source(node)!r}")
        scalar = pa.scalar(node.value)
        return lambda _: scalar

    def _column(self, node: ast.Name) -> Evaluator:
        name = self.syntax.quoted_names.get(node.id, node.id)
        self.columns.setdefault(name, self.syntax.original_index(node.col_offset) + 1)
        return lambda b: b.column(name)

    def _unary(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return self.guarded(node, lambda b: pc.invert(operand(b)))
        if isinstance(node.op, ast.USub):
            return self.guarded(node, lambda b: pc.negate_checked(operand(b)))
        if isinstance(node.op, ast.UAdd):
            return operand
        raise self.fail(node, "unsupported operator '~'")

    def _binary(self, node: ast.BinOp) -> Evaluator:
        left, right = self.compile(node.left), self.compile(node.right)
        op = type(node.op)
        if op in _ARITHMETIC:
            kernel = _ARITHMETIC[op]
            return self.guarded(node, lambda b: pc.call_function(kernel, [left(b), right(b)]))
        if op is ast.Div:
            return self.guarded(node, lambda b: _divide(left(b), right(b)))
        if op is ast.Mod:
            return self.guarded(node, lambda b: _remainder(left(b), right(b)))
        raise self.fail(node, f"unsupported operator in {self.source(node)!r}")

    def _compare(self, node: ast.Compare) -> Evaluator:
        operands = [node.left, *node.comparators]
        parts = [
            self._comparison(node, operands[i], op, operands[i + 1])
            for i, op in enumerate(node.ops)
        ]
        if len(parts) == 1:
            return parts[0]
        return lambda b: _fold(pc.and_kleene, [p(b) for p in parts])

    def _comparison(
        self, node: ast.Compare, left_node: ast.expr, op: ast.cmpop, right_node: ast.expr
    ) -> Evaluator:
        left = self.compile(left_node)
        if isinstance(op, ast.Is | ast.IsNot):
            if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                raise self.fail(right_node, "'is' must be followed by null or not null")
            kernel = pc.is_null if isinstance(op, ast.Is) else pc.is_valid
            return lambda b: kernel(left(b))
        if isinstance(op, ast.In | ast.NotIn):
            return self._membership(node, left, isinstance(op, ast.NotIn), right_node)
        name = _COMPARISONS[type(op)]
        right = self.compile(right_node)
        return self.guarded(node, lambda b: _compare(name, left(b), right(b)))

    def _membership(
        self, node: ast.Compare, left: Evaluator, negate: bool, options: ast.expr
    ) -> Evaluator:
        items = options.elts if isinstance(options, ast.Tuple | ast.List | ast.Set) else [options]
        literals = []
        for item in items:
            if not isinstance(item, ast.Constant) or isinstance(item.value, bytes):
                raise self.fail(item, "'in' takes a list of literals")
            literals.append(item.value)

        def member(b: pa.RecordBatch) -> Value:
            value = left(b)
            value_set = pa.array(literals)
            if pa.types.is_null(value_set.type) or value_set.type != value.type:
                value_set = value_set.cast(value.type)
            found = pc.is_in(value, value_set=value_set)
            if negate:
                found = pc.invert(found)
            return pc.if_else(pc.is_null(value), pa.scalar(None, pa.bool_()), found)

        return self.guarded(node, member)

    def _call(self, node: ast.Call) -> Evaluator:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail(node, f"unsupported call {self.source(node)!r}")
        name = node.func.id.lower()
        args = [self.compile(a) for a in node.args]
        arity = {"coalesce": None, **dict.fromkeys(_PATTERN_FUNCTIONS, 2)}.get(name, 1)
        if name not in _FUNCTIONS:
            close = difflib.get_close_matches(name, _FUNCTIONS, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise self.fail(node, f'unknown function "{node.func.id}"', hint)
        if (arity is not None and len(args) != arity) or not args:
            raise self.fail(node, f"{name}() takes {arity or 'at least 1'} argument(s)")
        if name in _STRING_FUNCTIONS:
            kernel = _STRING_FUNCTIONS[name]
            return self.guarded(node, lambda b: pc.call_function(kernel, [args[0](b)]))
        if name == "length":
            return self.guarded(node, lambda b: _length(args[0](b)))
        if name == "coalesce":
            return self.guarded(node, lambda b: pc.coalesce(*[a(b) for a in args]))
        pattern = node.args[1]
        if not isinstance(pattern, ast.Constant) or not isinstance(pattern.value, str):
            raise self.fail(pattern, f"the second argument of {name}() must be a string")
        kernel, options = _PATTERN_FUNCTIONS[name], pc.MatchSubstringOptions(pattern.value)
        return self.guarded(node, lambda b: pc.call_function(kernel, [args[0](b)], options))


def _fold(kernel: Callable[[Value, Value], Value], values: list[Value]) -> Value:
    result = values[0]
    for value in values[1:]:
        result = kernel(result, value)
    return result


def _compare(name: str, left: Value, right: Value) -> Value:
    left, right = _literal_as(left, right), _literal_as(right, left)
    return pc.call_function(name, [left, right])


def _literal_as(value: Value, other: Value) -> Value:
    """A string literal read as a value of ``other``'s temporal or decimal type."""
    if not isinstance(value, pa.Scalar) or not pa.types.is_string(value.type):
        return value
    target = other.type
    if not (pa.types.is_temporal(target) or pa.types.is_decimal(target)):
        return value
    if pa.types.is_timestamp(target) and target.tz is not None:
        try:
            return value.cast(target)
        except pa.ArrowInvalid:
            return value.cast(pa.timestamp(target.unit)).cast(target)
    return value.cast(target)


def _divide(left: Value, right: Value) -> Value:
    if pa.types.is_integer(left.type) and pa.types.is_integer(right.type):
        left, right = left.cast(pa.float64()), right.cast(pa.float64())
    return pc.divide(left, _null_if_zero(right))


def _remainder(left: Value, right: Value) -> Value:
    return pc.remainder(left, _null_if_zero(right))


def _null_if_zero(divisor: Value) -> Value:
    return pc.if_else(pc.equal(divisor, 0), pa.scalar(None, divisor.type), divisor)


def _length(value: Value) -> Value:
    if pa.types.is_binary(value.type) or pa.types.is_large_binary(value.type):
        return pc.binary_length(value)
    return pc.utf8_length(value)
