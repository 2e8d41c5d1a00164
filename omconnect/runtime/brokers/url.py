"""Broker URLs: ``[oms:]SCHEME://LOCATION[?option=value&...]``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

OMS_PREFIX = "oms:"


@dataclass(frozen=True)
class BrokerUrl:
    """A parsed broker URL.

    Attributes:
        scheme: the driver name, lower case (``embedded``, ``kafka``, ...).
        location: what follows ``SCHEME://`` up to ``?``: a path for the embedded broker,
            ``[user:password@]host:port[/namespace]`` for servers. It may hold a secret.
        options: the query string as a dict.
        text: the URL as given.
    """

    scheme: str
    location: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def shown(self) -> str:
        """The URL as a broker shows it (``Broker.url``, which logs and errors may repeat):
        without the user and password."""
        return re.sub(r"//[^/?]*@", "//***@", self.text)


def parse_broker_url(url: str) -> BrokerUrl:
    """Split a broker URL; ``oms:kafka://h:9092`` and ``kafka://h:9092`` are the same.

    Raises:
        ValueError: the text has no ``SCHEME://``.
    """
    text = url.strip()
    body = text[len(OMS_PREFIX) :] if text.lower().startswith(OMS_PREFIX) else text
    scheme, separator, rest = body.partition("://")
    if not separator or not scheme:
        raise ValueError(
            f"a broker URL looks like embedded://.omconnect or kafka://host:9092, not {text!r}"
        )
    location, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    return BrokerUrl(scheme=scheme.lower(), location=location, options=options, text=text)
