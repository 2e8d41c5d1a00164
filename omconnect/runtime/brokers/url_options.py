"""The location and ``?option=value`` pairs of a broker URL, checked once when a driver opens
it: every reader here refuses a bad value with one line naming the option and what it must
be, and none of them repeats the URL's password."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TypeVar
from urllib.parse import unquote

from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.url import BrokerUrl

T = TypeVar("T")


class BrokerUrlError(BrokerError, ValueError):
    """A broker URL that cannot work: a malformed location, an unknown option or a bad value.
    Both a ``BrokerError`` and the ``ValueError`` that ``open_broker`` promises for malformed
    URLs; the message never repeats the password."""


class UrlOptions:
    """The options of ``url``, each read (and checked) by one call.

    Args:
        url: the parsed URL.
        known: every option the driver takes; any other is refused here.
        error: what a bad option raises (a ``ValueError``).
        subject: what messages call the URL: ``amqp://`` gives "amqp:// option prefix
            must be ..." (default: the URL's scheme and ``://``).
        context: what every message starts with (e.g. the URL, where it holds no password).

    Raises:
        error: an option that is not ``known``.
    """

    def __init__(
        self,
        url: BrokerUrl,
        known: Collection[str],
        error: type[ValueError] = ValueError,
        subject: str | None = None,
        context: str = "",
    ) -> None:
        self._options = url.options
        self._error = error
        self._subject = subject or f"{url.scheme}://"
        self._context = context
        refuse_unknown(url, known, error, self._subject, context)

    def _refuse(self, name: str, wanted: str, text: str) -> ValueError:
        return self._error(
            f"{self._context}{self._subject} option {name} must be {wanted}, not {text!r}"
        )

    def seconds(self, name: str, default: float, most: float | None = None) -> float:
        """A positive number of seconds (at most ``most``)."""
        text = self._options.get(name)
        if text is None:
            return default
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds > 0 or (most is not None and seconds > most):
            raise self._refuse(name, "a positive number of seconds", text)
        return seconds

    def flag(self, name: str) -> bool:
        """``true`` or ``false`` (``1`` or ``0``, any case); false when absent."""
        text = self._options.get(name, "false").lower()
        if text not in ("true", "false", "1", "0"):
            raise self._refuse(name, "true or false", text)
        return text in ("true", "1")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number from ``low`` to ``high``."""
        text = self._options.get(name, str(default))
        if not text.isdigit() or not low <= int(text) <= high:
            raise self._refuse(name, f"{low} to {high}", text)
        return int(text)

    def choice(self, name: str, choices: Sequence[str], default: T) -> str | T:
        """One of ``choices``; ``default`` when absent."""
        text = self._options.get(name)
        if text is None:
            return default
        if text not in choices:
            raise self._refuse(name, " or ".join(map(repr, choices)), text)
        return text

    def text(self, name: str, default: str, valid: Callable[[str], object], wanted: str) -> str:
        """Text that ``valid`` accepts; ``wanted`` says what that is."""
        text = self._options.get(name, default)
        if not valid(text):
            raise self._refuse(name, wanted, text)
        return text


def refuse_unknown(
    url: BrokerUrl, known: Collection[str], error: type[ValueError], subject: str, context: str = ""
) -> None:
    """Raise ``error`` for the first option of ``url`` that is not ``known`` (see
    ``UrlOptions`` for ``subject`` and ``context``)."""
    unknown = sorted(set(url.options) - set(known))
    if unknown:
        raise error(
            f"{context}unknown {subject} option {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def host_port(
    text: str, default_port: int, error: type[ValueError], url_name: str, example: str
) -> tuple[str, int]:
    """The host (an IPv6 address without its brackets) and port of ``host[:port]``.

    Raises:
        error: no host ("``url_name`` needs a server: ``example``"), or a bad port.
    """
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise error(f"{url_name} needs a server: {example}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise error(f"the port of {url_name} must be 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def credentials(text: str) -> tuple[str | None, str | None]:
    """The user and password of ``[user][:password]`` (what comes before a URL's ``@``),
    percent-decoded; None for those it leaves out (an empty user too)."""
    if not text:
        return None, None
    user, separator, password = text.partition(":")
    return unquote(user) or None, unquote(password) if separator else None


def display(host: str, port: int) -> str:
    """``host:port`` for messages, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
