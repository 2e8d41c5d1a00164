"""Choosing a broker driver from a URL."""

from __future__ import annotations

import pytest

from omconnect.runtime.brokers import UnsupportedBrokerError, open_broker, parse_broker_url
from omconnect.runtime.brokers.embedded import EmbeddedBroker


def test_oms_prefix_and_plain_urls_parse_alike() -> None:
    plain = parse_broker_url("kafka://h1:9092,h2:9092/ns?acks=all")
    prefixed = parse_broker_url("oms:KAFKA://h1:9092,h2:9092/ns?acks=all")
    assert (plain.scheme, plain.location, plain.options) == (
        "kafka",
        "h1:9092,h2:9092/ns",
        {"acks": "all"},
    )
    assert (prefixed.scheme, prefixed.location, prefixed.options) == (
        plain.scheme,
        plain.location,
        plain.options,
    )


def test_embedded_urls_open_the_embedded_broker() -> None:
    broker = open_broker("oms:embedded://state/dir?sync=full")
    assert isinstance(broker, EmbeddedBroker)
    assert str(broker.log_path) == "state/dir/broker.sqlite"
    assert broker.url == "oms:embedded://state/dir?sync=full"
    absolute = open_broker("embedded:///srv/omconnect")
    assert isinstance(absolute, EmbeddedBroker)
    assert str(absolute.log_path) == "/srv/omconnect/broker.sqlite"


def test_unknown_schemes_and_malformed_urls_are_refused() -> None:
    with pytest.raises(UnsupportedBrokerError, match=r"unknown broker scheme pulsar://") as caught:
        open_broker("pulsar://user:s3cret@localhost:6650")
    assert "s3cret" not in str(caught.value)
    assert caught.value.scheme == "pulsar"
    with pytest.raises(ValueError, match="looks like embedded://"):
        open_broker(".omconnect")
