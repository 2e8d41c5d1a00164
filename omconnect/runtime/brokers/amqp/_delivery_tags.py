"""``DeliveryTags``: the messages a consumer's channel holds unacknowledged, and the fewest
``basic.ack`` frames that acknowledge exactly some of them.

The server numbers the deliveries of a channel 1, 2, 3...; ``basic.ack(tag, multiple=True)``
acknowledges every delivery up to ``tag`` still unacknowledged, one by one costs a frame
each. A batch handed to the runtime is usually the oldest unacknowledged run, so it goes in
one frame; one that is not (another topic's batch before it is still being processed, or
messages of a paused topic wait in the buffer) goes tag by tag, and the tags it leaves behind
are remembered, so a later multiple acknowledgement never names a tag twice (the server
closes the channel for an unknown tag).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class DeliveryTags:
    """The unacknowledged delivery tags of one channel, in delivery order."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._acked_alone: set[int] = set()

    def __len__(self) -> int:
        """How many deliveries are unacknowledged."""
        return len(self._order) - len(self._acked_alone)

    def add(self, tag: int) -> None:
        """A message was delivered with ``tag`` (tags only grow on a channel)."""
        self._order.append(tag)

    def acknowledge(self, tags: Iterable[int]) -> tuple[int | None, list[int]]:
        """Take ``tags`` (each unacknowledged) out; what to send: the tag to acknowledge
        with ``multiple=True`` (None for none) and the tags to acknowledge one by one."""
        pending = set(tags)
        through = None
        while self._order and (self._order[0] in pending or self._order[0] in self._acked_alone):
            tag = self._order.popleft()
            if tag in pending:
                pending.discard(tag)
                through = tag
            else:
                self._acked_alone.discard(tag)
        alone = sorted(pending)
        self._acked_alone.update(alone)
        return through, alone
