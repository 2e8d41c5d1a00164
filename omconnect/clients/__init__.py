"""Network clients that connectors and the runtime share, below both of them.

A module here wraps one client library for asyncio and knows nothing of omconnect's
contracts (it imports no other omconnect package), so a broker driver in the runtime and a
source connector reading the same kind of server use one implementation:

- ``mqtt_connection``: one MQTT 5 connection, paho-mqtt's network thread bridged to asyncio
  (connect, publish with flow control, subscribe, manual acknowledgements);
- ``mqtt_acks``: the acknowledgements a connection waits for, and its publish window;
- ``mqtt_inbox``: the messages a connection received, handed to the event loop.

paho-mqtt is an extra (``omconnect[mqtt]``): import these modules only where it is needed.
"""
