"""The MQTT clients of the device benchmark (``mqtt_devices.py``), each run as a process of
its own by that script: the devices (one paho client publishing telemetry at QoS 1) and a
plain paho subscriber (what a client that only receives and acknowledges can take: the limit).

A message is one small JSON object, ``{"reading": n, "sent_ms": ..., "temperature": ...,
"pressure": ...}`` (about 90 bytes), on ``<root>/site-<s>/dev-<d>/telemetry``: readings
1..N go round ``DEVICES`` devices of two sites. ``sent_ms`` is ``time.time()`` in ms just
before the publish call (one machine, one clock). Reading 0 is a probe: the benchmark sends
probes until its reader sees one, so that it starts the clock only once the subscriber
is in place; readers keep probes apart.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import oracle
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

DEVICES = 8
PUBLISH_MAX_INFLIGHT = 1000
# Messages the server may have in flight to a subscriber (omconnect's source and the plain
# subscriber alike): the most MQTT 5 allows, not the source's default 10,000. Beyond them the
# server queues at most 1,000 (Mosquitto's default max_queued_messages) and drops the rest,
# so at 10,000 a burst is lost whenever a subscriber falls 11,000 behind the publisher.
RECEIVE_MAXIMUM = 65_535
ACK_TIMEOUT_SECONDS = 120.0


def device_topic(root: str, reading: int) -> str:
    device = reading % DEVICES
    return f"{root}/site-{device % 2}/dev-{device}/telemetry"


def topic_filter(root: str) -> str:
    return f"{root}/+/+/telemetry"


def payload(reading: int, sent_ms: float) -> bytes:
    return json.dumps(
        {
            "reading": reading,
            "sent_ms": round(sent_ms, 3),
            "temperature": 20.0 + reading % 100 / 10,
            "pressure": 1.0 + reading % 7 / 100,
        }
    ).encode()


def connect(
    address: str,
    client_id: str = "",
    clean_start: bool = True,
    receive_maximum: int | None = None,
    max_inflight: int | None = None,
) -> paho.Client:
    """A connected MQTT 5 client of ``address`` (``host:port``) with its network loop running;
    ``max_inflight``: the most publishes it has unacknowledged (paho's default 20), any more
    wait in the client."""
    host, _, port = address.rpartition(":")
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    if max_inflight is not None:
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(0)  # no limit on those waiting
    properties = None
    if receive_maximum is not None:
        properties = Properties(PacketTypes.CONNECT)
        properties.ReceiveMaximum = receive_maximum
    client.connect(host, int(port), clean_start=clean_start, properties=properties)
    client.loop_start()
    return client


def end_session(address: str, client_id: str) -> None:
    """End the server's session of ``client_id``: a clean start, no expiry, then disconnect."""
    client = connect(address, client_id)
    time.sleep(0.2)  # the CONNACK: paho connects asynchronously once the loop runs
    client.disconnect()
    client.loop_stop()


def publish(address: str, root: str, count: int, rate: float) -> dict[str, Any]:
    """Publish readings 1..``count`` at QoS 1, as fast as the client goes (``rate`` 0) or
    reading k at ``start + (k - 1) / rate``, with at most ``PUBLISH_MAX_INFLIGHT`` not yet
    acknowledged; wait for every acknowledgement.

    The window is kept here, not in paho: a publish beyond paho's own window is queued in the
    client, and paho walks its whole queue on every acknowledgement, so a long queue slows the
    publisher to a crawl (and ``sent_ms`` would then say when a reading was queued, not sent).

    Returns:
        When the first publish started and the last one was acknowledged (``time.time()``
        in ms), the count acknowledged, and the rate over that span.
    """
    client = connect(address, max_inflight=PUBLISH_MAX_INFLIGHT)
    window = threading.BoundedSemaphore(PUBLISH_MAX_INFLIGHT)
    acknowledged = [0, 0.0]
    done = threading.Event()

    def on_publish(*_: Any) -> None:
        acknowledged[0] += 1
        window.release()
        if acknowledged[0] == count:
            acknowledged[1] = time.time() * 1000
            done.set()

    client.on_publish = on_publish
    behind = 0.0
    start = time.monotonic() + 0.05
    first_ms = time.time() * 1000
    try:
        for reading in range(1, count + 1):
            if rate:
                wait = start + (reading - 1) / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    behind = max(behind, -wait)
            if not window.acquire(timeout=ACK_TIMEOUT_SECONDS):
                break
            sent_ms = time.time() * 1000
            if reading == 1:
                first_ms = sent_ms
            client.publish(device_topic(root, reading), payload(reading, sent_ms), qos=1)
        last_publish_ms = time.time() * 1000
        done.wait(ACK_TIMEOUT_SECONDS)
    finally:
        client.disconnect()
        client.loop_stop()
    last_ack_ms = acknowledged[1] or time.time() * 1000
    seconds = (last_ack_ms - first_ms) / 1000
    return {
        "published": count,
        "acknowledged": acknowledged[0],
        "first_publish_ms": first_ms,
        "last_publish_ms": last_publish_ms,
        "last_ack_ms": last_ack_ms,
        "seconds": round(seconds, 3),
        "rate": round(acknowledged[0] / seconds) if seconds > 0 else None,
        "offered_rate": rate or None,
        "most_behind_ms": round(behind * 1000, 1),
    }


def subscribe(
    address: str, root: str, client_id: str, expect: int, idle_seconds: float, timeout: float
) -> dict[str, Any]:
    """Receive ``<root>``'s telemetry at QoS 1 (a clean session, ``RECEIVE_MAXIMUM`` in
    flight, paho acknowledging each message as it is handed over) until readings 1..``expect``
    all came, or nothing came for ``idle_seconds`` after the first, or ``timeout``. Prints
    ``ready`` once subscribed.

    Returns:
        The readings' count, distinct count and checksum, the duplicates and probes, and when
        the last reading arrived (``time.time()`` in ms).
    """
    seen = np.zeros(expect + 1, bool)
    counts = {"messages": 0, "unique": 0, "probes": 0}
    last_ms = [0.0]
    complete = threading.Event()
    subscribed = threading.Event()

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        reading = int(json.loads(message.payload)["reading"])
        if reading <= 0:
            counts["probes"] += 1
            return
        last_ms[0] = time.time() * 1000
        counts["messages"] += 1
        if reading <= expect and not seen[reading]:
            seen[reading] = True
            counts["unique"] += 1
            if counts["unique"] == expect:
                complete.set()

    client = connect(address, client_id, receive_maximum=RECEIVE_MAXIMUM)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.subscribe([(topic_filter(root), SubscribeOptions(qos=1))])
    if not subscribed.wait(10):
        raise SystemExit("the MQTT server did not answer the subscribe")
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    try:
        while not complete.wait(0.1) and time.monotonic() < deadline:
            if last_ms[0] and time.time() * 1000 - last_ms[0] > idle_seconds * 1000:
                break
    finally:
        client.disconnect()
        client.loop_stop()
    found = oracle.checksum_of_keys(np.flatnonzero(seen))
    return {
        "messages": counts["messages"],
        "unique": counts["unique"],
        "duplicates": counts["messages"] - counts["unique"],
        "probes": counts["probes"],
        "checksum": {"count": found.count, "sum": found.sum, "xor": found.xor},
        "last_seen_ms": last_ms[0] or None,
    }
