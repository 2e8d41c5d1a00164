"""Broker drivers: OpenMessaging access points chosen by URL.

``open_broker("embedded://.omconnect")`` gives a ``Broker``; ``oms:`` prefixed URLs work too.
"""

from omconnect.runtime.brokers.base import (
    Broker,
    BrokerNotFoundError,
    ConsumedBatch,
    Consumer,
    Producer,
    SendResult,
    TopicInfo,
    TopicPartition,
)
from omconnect.runtime.brokers.resolution import (
    UnsupportedBrokerError,
    open_broker,
    supported_schemes,
)
from omconnect.runtime.brokers.url import BrokerUrl, parse_broker_url

__all__ = [
    "Broker",
    "BrokerNotFoundError",
    "BrokerUrl",
    "ConsumedBatch",
    "Consumer",
    "Producer",
    "SendResult",
    "TopicInfo",
    "TopicPartition",
    "UnsupportedBrokerError",
    "open_broker",
    "parse_broker_url",
    "supported_schemes",
]
