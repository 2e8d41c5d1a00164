"""Keeping a pipeline's secrets out of errors, logs and ``omconnect validate`` output.

A ``Redactor`` holds every secret value of one loaded pipeline and replaces each occurrence
in a text by ``***``. Secrets are: values of spec fields typed ``SecretStr``, values of keys
named like ``password``/``secret``/``token``/``api_key``/``secret_access_key``/``credentials``
(also ``db_password``, ``client_secret``...), everything read by ``${file:...}``, values of
environment variables whose names contain PASSWORD, SECRET, TOKEN or KEY, and passwords in
URLs (``scheme://user:PASSWORD@host``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from itertools import groupby
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

MASK = "***"
SECRET_KEY_NAMES = ("password", "secret", "token", "api_key", "secret_access_key", "credentials")
SECRET_ENV_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "KEY")

# ``scheme://rest``: a scheme is a run of scheme characters holding a letter. The lookbehind
# anchors a match at the start of such a run, so a long run without "://" is scanned once,
# not once per character (which made a 100k-character value take seconds).
_URL = re.compile(r"(?<![A-Za-z0-9+.\-])[0-9+.\-]*[A-Za-z][A-Za-z0-9+.\-]*://(\S+)")
# Guessed secrets (environment variables) this short or this common would mask ordinary words.
_MIN_GUESSED_LENGTH = 4
_NOT_SECRETS = {"true", "false", "none", "null", "yes", "no"}
_MIN_SECRET_LINE = 8
_LONG_SECRET = 256


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a secret (``password``, ``db_password``, ``api_key``...)."""
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return any(name == marker or name.endswith("_" + marker) for marker in SECRET_KEY_NAMES)


class Redactor:
    """The secrets of one pipeline, and the means to mask them in any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        # Secrets longer than _LONG_SECRET (longest first), and a pattern of the others.
        self._matcher: tuple[list[str], re.Pattern[str] | None] | None = None
        for secret in secrets:
            self.add(secret)

    @property
    def secrets(self) -> frozenset[str]:
        """Every string that ``redact`` masks (including escaped spellings)."""
        return frozenset(self._secrets)

    def add(self, value: object) -> None:
        """Treat ``value`` (a str, number or ``SecretStr``) as a secret."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return
        text = str(value)
        if not text:
            return
        # The same secret may appear escaped (repr, JSON) or percent-decoded in a message.
        variants = {text, repr(text)[1:-1], json.dumps(text)[1:-1], unquote(text)}
        variants.update(line for line in text.splitlines() if len(line) >= _MIN_SECRET_LINE)
        self._secrets.update(variant for variant in variants if variant)
        self._matcher = None

    def add_environment(self, env: Mapping[str, str]) -> None:
        """Add the values of variables whose names mark them as secret."""
        for name, value in env.items():
            if not any(marker in name.upper() for marker in SECRET_ENV_MARKERS):
                continue
            if len(value) >= _MIN_GUESSED_LENGTH and value.lower() not in _NOT_SECRETS:
                self.add(value)
                self.add_url_passwords(value)

    def add_url_passwords(self, text: str) -> None:
        """Add the password of every ``scheme://user:password@host`` URL in ``text``."""
        for match in _URL.finditer(text):
            rest = match.group(1)
            # An unencoded "@" or "/" in a password makes the end ambiguous: take both readings.
            for at in {rest.find("@"), rest.rfind("@")}:
                user, colon, password = rest[:at].partition(":") if at > 0 else ("", "", "")
                if colon and "/" not in user and password:
                    self.add(password)

    def collect(self, value: Any, secret: bool = False) -> None:
        """Add every secret found in a parsed document or a validated spec.

        Walks mappings, lists and pydantic models; every scalar under a secret-named key and
        every ``SecretStr`` is a secret; every string is searched for URL passwords.
        """
        if isinstance(value, SecretStr | SecretBytes):
            self.add(value.get_secret_value() if isinstance(value, SecretStr) else None)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                self.collect(getattr(value, name), secret or is_secret_key(name))
            for name, extra in (value.model_extra or {}).items():
                self.collect(extra, secret or is_secret_key(name))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self.collect(item, secret or is_secret_key(key))
        elif isinstance(value, list | tuple):
            for item in value:
                self.collect(item, secret)
        elif isinstance(value, str):
            if secret:
                self.add(value)
            self.add_url_passwords(value)
        elif secret:
            self.add(value)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***`` (longest secrets first)."""
        if not self._secrets:
            return text
        if self._matcher is None:
            # Compiling a regular expression costs microseconds per character: long secrets
            # (a certificate, a 60k-character variable) are replaced as plain text first.
            long = sorted((s for s in self._secrets if len(s) > _LONG_SECRET), key=len)
            short = (s for s in self._secrets if len(s) <= _LONG_SECRET)
            self._matcher = (long[::-1], _secrets_pattern(short))
        long_secrets, pattern = self._matcher
        for secret in long_secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return pattern.sub(MASK, text) if pattern is not None else text

    def unredact(self, text: str) -> str:
        """``text`` as it was before ``redact``, where that is certain.

        A text with ``***`` (a position that ``offsets list`` printed, fed back to ``offsets
        set``) gets back the one secret whose masking gives that text again; a text that no
        secret explains is returned as it is (a name may hold ``***`` itself).

        Raises:
            ValueError: several different secrets explain the text.
        """
        if MASK not in text:
            return text
        found = {
            candidate
            for candidate in (text.replace(MASK, secret) for secret in self._secrets)
            if self.redact(candidate) == text
        }
        if len(found) > 1:
            raise ValueError(f"{text!r}: several secrets could stand behind {MASK}")
        return found.pop() if found else text

    def redact_value(self, value: Any) -> Any:
        """A JSON-able copy of ``value`` with secret values masked, recursively."""
        if isinstance(value, SecretStr | SecretBytes):
            return MASK
        if isinstance(value, BaseModel):
            return self.redact_value(value.model_dump(mode="python"))
        if isinstance(value, Mapping):
            return {
                str(key): MASK if is_secret_key(key) and item else self.redact_value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact_value(item) for item in value]
        if isinstance(value, str):
            return MASK if value in self._secrets else self.redact(value)
        jsonable = to_jsonable_python(value)
        return self.redact(jsonable) if isinstance(jsonable, str) else jsonable


def _secrets_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching, at each position, the longest secret that starts there.

    A flat alternation tries every secret at every position (a value holding thousands of
    URL passwords took seconds per message); this one is a prefix tree, so a position costs
    about the length of the longest match there. Pathological nesting falls back to the flat
    alternation.
    """
    words = sorted({secret for secret in secrets if secret})
    if not words:
        return None
    try:
        return re.compile(_prefix_tree(words))
    except RecursionError:
        return re.compile("|".join(re.escape(s) for s in sorted(words, key=len, reverse=True)))


def _prefix_tree(words: list[str]) -> str:
    """The regular expression of sorted, distinct ``words`` as a prefix tree. An empty word
    means "or stop here"; longer continuations are tried first, so the longest match wins."""
    if len(words) == 1:
        return re.escape(words[0])
    stop = words[0] == ""
    rest = words[1:] if stop else words
    prefix = _common_prefix(rest[0], rest[-1])
    if prefix:
        tail = _prefix_tree([word[len(prefix) :] for word in rest])
        body = re.escape(prefix) + (tail if len(rest) == 1 else f"(?:{tail})")
    else:
        groups = [list(group) for _, group in groupby(rest, key=lambda word: word[0])]
        body = "|".join(_prefix_tree(group) for group in groups)
    return f"(?:{body})?" if stop else body


def _common_prefix(first: str, last: str) -> str:
    end = 0
    for a, b in zip(first, last, strict=False):
        if a != b:
            break
        end += 1
    return first[:end]


class RedactingFilter(logging.Filter):
    """Masks secrets in log records' final messages, exception text and stack text.

    Attach it to handlers (a logger's own filters do not see records from child loggers).
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not leak its raw arguments either
            message = f"{record.msg} {record.args}"
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True
