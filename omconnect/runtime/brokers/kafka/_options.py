"""The options of a ``kafka://`` URL, checked before any client exists.

``kafka://host:port[,host:port...][/namespace][?option=value&...]``: the bootstrap servers
(port 9092 when left out) and options in milliseconds or plain words. ``transactions=false``
declares a server without (complete) Kafka transactions, so the broker does not offer them
(Tansu 0.6 commits transactions but lets readers see aborted ones, and never times out a
transaction whose producer died). An OpenMessaging
namespace path is accepted and names nothing (Kafka has no namespaces). Credentials in the
URL are refused: this driver speaks PLAINTEXT only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from omconnect.runtime.brokers.url import BrokerUrl
from omconnect.runtime.brokers.url_options import BrokerUrlError, refuse_unknown

DEFAULT_PORT = 9092
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


class KafkaUrlError(BrokerUrlError):
    """A ``kafka://`` URL that cannot work."""


@dataclass(frozen=True)
class KafkaOptions:
    """What a ``kafka://`` URL sets; every time is in milliseconds.

    Attributes:
        servers: the bootstrap servers, ``host:port`` joined by commas.
        session_timeout_ms: how long a group member may miss heartbeats before the group
            takes its partitions away (small, so a dead member is replaced quickly).
        heartbeat_interval_ms: how often members heartbeat; default a tenth of the session.
        max_poll_interval_ms: how long a member may go without polling before it leaves.
        connect_timeout_ms: how long the first contact may take before opening fails.
        request_timeout_ms: the bound of every other broker call (commits, metadata, ...).
        delivery_timeout_ms: how long a message may wait for its acknowledgement, retries
            included, before its send fails.
        transaction_timeout_ms: how long a transaction may stay open before the broker
            aborts it.
        linger_ms: how long the producer waits to fill a request.
        compression: the producer's codec (none, gzip, snappy, lz4, zstd).
        replication_factor: of the topics this driver creates (-1: the broker's default).
        fetch_wait_ms: how long the broker may hold a fetch that has nothing new.
        metadata_refresh_ms: how often a pattern subscription looks for new topics.
        transactions: whether the server has complete Kafka transactions (aborted ones
            hidden from ``read_committed`` readers, dangling ones timed out).
    """

    servers: str
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 0
    max_poll_interval_ms: int = 300_000
    connect_timeout_ms: int = 5_000
    request_timeout_ms: int = 30_000
    delivery_timeout_ms: int = 30_000
    transaction_timeout_ms: int = 60_000
    linger_ms: int = 5
    compression: str = "lz4"
    replication_factor: int = -1
    fetch_wait_ms: int = 100
    metadata_refresh_ms: int = 5_000
    transactions: bool = True

    @property
    def heartbeat_ms(self) -> int:
        return self.heartbeat_interval_ms or max(1, self.session_timeout_ms // 10)

    @property
    def join_wait(self) -> float:
        """Seconds a first poll waits for the group to give the member its partitions when
        there are messages to read (a join takes about half a session on some servers)."""
        return max(3.0, self.session_timeout_ms / 1000)


_INTEGER_OPTIONS = {
    f.name for f in fields(KafkaOptions) if f.type == "int" and f.name != "replication_factor"
}
KNOWN_OPTIONS = tuple(
    sorted(_INTEGER_OPTIONS | {"compression", "replication_factor", "transactions"})
)
_BOOLEANS = {"true": True, "false": False}


def parse_kafka_url(url: BrokerUrl) -> KafkaOptions:
    """The options of ``url``, checked.

    Raises:
        KafkaUrlError: no host, a bad port, credentials, an unknown option or a bad value.
    """
    servers = _servers(url)
    refuse_unknown(url, KNOWN_OPTIONS, KafkaUrlError, "kafka", f"{_shown(url)}: ")
    values: dict[str, int | str | bool] = {}
    for name, text in url.options.items():
        if name == "transactions":
            if text.lower() not in _BOOLEANS:
                raise KafkaUrlError(
                    f"{_shown(url)}: transactions must be true or false, not {text!r}"
                )
            values[name] = _BOOLEANS[text.lower()]
        elif name == "compression":
            if text not in COMPRESSIONS:
                raise KafkaUrlError(
                    f"{_shown(url)}: compression must be one of {', '.join(COMPRESSIONS)}, "
                    f"not {text!r}"
                )
            values[name] = text
        elif name == "replication_factor":
            number = _integer(url, name, text)
            if number == 0 or number < -1:
                raise KafkaUrlError(
                    f"{_shown(url)}: replication_factor must be -1 (the broker's default) "
                    f"or at least 1, not {text!r}"
                )
            values[name] = number
        else:
            number = _integer(url, name, text)
            if number < (0 if name == "linger_ms" else 1):
                raise KafkaUrlError(
                    f"{_shown(url)}: {name} must be a positive number of milliseconds, not {text!r}"
                )
            values[name] = number
    options = KafkaOptions(servers=servers, **values)  # type: ignore[arg-type]
    if options.heartbeat_ms >= options.session_timeout_ms:
        raise KafkaUrlError(
            f"{_shown(url)}: heartbeat_interval_ms ({options.heartbeat_ms}) must be below "
            f"session_timeout_ms ({options.session_timeout_ms})"
        )
    return options


def _servers(url: BrokerUrl) -> str:
    location = url.location
    if "@" in location:
        raise KafkaUrlError(
            f"{url.scheme}://...: credentials in a kafka:// URL are not supported "
            "(the driver connects in PLAINTEXT); remove the user:password@ part"
        )
    hosts, _, _namespace = location.partition("/")
    servers = []
    for entry in hosts.split(","):
        host, colon, port = entry.strip().rpartition(":")
        if not colon:
            host, port = entry.strip(), str(DEFAULT_PORT)
        if not host or (host.startswith("[") != host.endswith("]")):
            raise KafkaUrlError(
                f"{_shown(url)}: a kafka:// URL names its brokers as host:port[,host:port], "
                f"e.g. kafka://localhost:9092; got {hosts!r}"
            )
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise KafkaUrlError(f"{_shown(url)}: {port!r} is not a port number (1-65535)")
        servers.append(f"{host}:{int(port)}")
    return ",".join(servers)


def _integer(url: BrokerUrl, name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise KafkaUrlError(f"{_shown(url)}: {name} must be a whole number, not {text!r}") from None


def _shown(url: BrokerUrl) -> str:
    """The URL as errors show it (credentials are refused before anything shows it)."""
    return url.text or f"{url.scheme}://{url.location}"
