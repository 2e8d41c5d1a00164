"""The binding key of a pattern subscription on the all-topics exchange.

A subscription's ``pattern`` is a regular expression the whole topic name must match; a topic
exchange routes by a key of dot-separated words where ``*`` stands for one word and ``#`` for
any number of them. No key says what every expression says, so the queue is bound with the
narrowest key that every match is sure to satisfy, and the consumer drops (acknowledges
unread) the messages of topics the expression itself does not match: the literal text all
matches start with, cut after its last dot, then ``#``. The runtime's subscriptions
(``(?!orders\\.dlq$)orders\\..+``: the ``<topic>.<stream>`` topics of a pipeline) become
``orders.#``; a pattern that starts with something other than literal text (``.*``, a class,
an alternation at the top) binds ``#``: every topic of the prefix reaches the queue and only
the matching ones are read, which costs traffic but is still right.

The literal start is read by a small scanner that knows escapes, character classes, groups,
quantifiers and leading lookaheads, and stops early wherever it is unsure: a shorter start
only makes the key match more.
"""

from __future__ import annotations

import re

from omconnect.runtime.brokers.amqp._naming import MAX_NAME_BYTES

_SPECIAL = frozenset(".^$*+?{}[]|()\\")
_QUANTIFIERS = frozenset("*+?{")


def binding_key(pattern: str) -> str:
    """The topic-exchange key that routes every topic whose whole name matches ``pattern``
    (and maybe others).

    Raises:
        ValueError: ``pattern`` is not a regular expression.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from None
    literal, whole = literal_start(pattern)
    if whole:
        key = literal
    else:
        words = literal.split(".")[:-1]
        key = ".".join([*words, "#"])
    return key if 0 < len(key.encode()) <= MAX_NAME_BYTES else "#"


def literal_start(pattern: str) -> tuple[str, bool]:
    """Text every whole-name match of ``pattern`` starts with, and whether it is the whole
    pattern (the only name that matches)."""
    if _alternation_at_top(pattern):
        return "", False
    found: list[str] = []
    at = 0
    while pattern.startswith(("(?=", "(?!"), at):  # zero width: matches start after them
        at = _after(pattern, at)
        if _quantified(pattern, at):
            return "", False
    while at < len(pattern):
        char = pattern[at]
        end = _after(pattern, at)
        if _quantified(pattern, end):
            break
        if char == "(" and (pattern.startswith("(?:", at) or not pattern.startswith("(?", at)):
            inner, whole = literal_start(
                pattern[at + (3 if pattern[at + 1] == "?" else 1) : end - 1]
            )
            found.append(inner)
            if not whole:
                break
        elif char == "\\" and end == at + 2 and not pattern[at + 1].isalnum():
            found.append(pattern[at + 1])  # an escaped punctuation character
        elif char not in _SPECIAL:
            found.append(char)
        else:
            break
        at = end
    return "".join(found), at == len(pattern)


def _after(pattern: str, at: int) -> int:
    """Where the element starting at ``at`` ends: an escape, a character class, a whole
    group, or one character."""
    char = pattern[at]
    if char == "\\":
        return at + 2
    if char == "[":
        at += 1
        if pattern.startswith("^", at):
            at += 1
        if pattern.startswith("]", at):  # a literal ] first in the class
            at += 1
        while at < len(pattern) and pattern[at] != "]":
            at += 2 if pattern[at] == "\\" else 1
        return at + 1
    if char == "(":
        at += 1
        while at < len(pattern) and pattern[at] != ")":
            at = _after(pattern, at)
        return at + 1
    return at + 1


def _quantified(pattern: str, at: int) -> bool:
    """Whether a quantifier follows at ``at`` (it applies to the element before)."""
    return at < len(pattern) and pattern[at] in _QUANTIFIERS


def _alternation_at_top(pattern: str) -> bool:
    at = 0
    while at < len(pattern):
        if pattern[at] == "|":
            return True
        at = _after(pattern, at)
    return False
