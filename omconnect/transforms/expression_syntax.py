"""The SQL-flavoured surface of filter expressions, rewritten into Python expression syntax.

Users write ``amount > 0 AND status IN ('paid', 'shipped') AND note IS NOT NULL``; the
expression compiler reads Python's ``ast``. This module rewrites, outside string literals:

- ``=`` to ``==`` and ``<>`` to ``!=``;
- ``AND``/``OR``/``NOT``/``IN``/``IS`` in any case to the Python keywords;
- ``NULL``/``TRUE``/``FALSE`` in any case to ``None``/``True``/``False``;
- SQL's doubled quote inside a string literal (``'it''s'``) to an escaped quote;
- a backtick-quoted column name (`` `order id` ``) to a placeholder identifier;
- newlines and tabs to spaces (an expression is one line for ``ast``), and drops leading
  whitespace.

Every character of the rewritten text remembers the character of the original it came from,
so errors point at what the user wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    |(?P<quoted>`[^`]*`)
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op><>|<=|>=|==|!=|=)
    |(?P<space>\s)
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_KEYWORDS = {
    "and": "and",
    "or": "or",
    "not": "not",
    "in": "in",
    "is": "is",
    "null": "None",
    "true": "True",
    "false": "False",
}

_OPERATORS = {"=": "==", "<>": "!="}

PLACEHOLDER_PREFIX = "__column_"


@dataclass(frozen=True)
class PythonSyntax:
    """An expression rewritten into Python syntax.

    Attributes:
        text: the Python expression.
        origin: for each character of ``text`` (and one past the end), the index of the
            character of the original expression it came from.
        quoted_names: placeholder identifier -> the backtick-quoted column name it stands for.
    """

    text: str
    origin: tuple[int, ...]
    quoted_names: dict[str, str]

    def original_index(self, utf8_offset: int) -> int:
        """The original character index of a UTF-8 byte offset into ``text`` (as in ``ast``)."""
        chars = len(self.text.encode()[:utf8_offset].decode(errors="ignore"))
        return self.origin[min(chars, len(self.origin) - 1)]


def to_python_syntax(expression: str) -> PythonSyntax:
    """Rewrite a filter expression into Python expression syntax (see the module docstring)."""
    pieces: list[str] = []
    origin: list[int] = []
    quoted: dict[str, str] = {}
    for match in _TOKEN.finditer(expression):
        token = match.group()
        kind = match.lastgroup
        if kind == "string":
            quote = token[0]
            piece = quote + token[1:-1].replace(quote * 2, "\\" + quote) + quote
        elif kind == "quoted":
            piece = f"{PLACEHOLDER_PREFIX}{len(quoted)}"
            quoted[piece] = token[1:-1]
        elif kind == "word":
            piece = _KEYWORDS.get(token.lower(), token)
        elif kind == "op":
            piece = _OPERATORS.get(token, token)
        elif kind == "space":
            if not pieces:
                continue  # ``ast`` refuses leading whitespace ("unexpected indent")
            piece = " "
        else:
            piece = token
        pieces.append(piece)
        start = match.start()
        origin.extend(start + min(i, len(token) - 1) for i in range(len(piece)))
    origin.append(len(expression))
    return PythonSyntax("".join(pieces), tuple(origin), quoted)
