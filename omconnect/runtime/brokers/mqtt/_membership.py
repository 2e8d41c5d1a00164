"""Which slot, and so which persistent session, a member of a consumer group takes.

What Mosquitto (2.0) does with a shared subscription decides the design:

- it hands each message to one member, round robin, when the message is published, whether
  that member is connected or not, and whatever it already holds: a member whose session is
  persistent keeps receiving its share while it is away (up to the server's
  ``max_queued_messages``, 1000 by default; the rest are dropped);
- a member's unacknowledged messages are never given to the other members: they stay in its
  session, and are sent again (DUP) only to a client that connects with the same client id
  and ``clean_start`` false. A session that ends (its expiry passes, or a clean start) takes
  them with it.

So a member's client id must outlive it: members are numbered slots, the client id of slot
``n`` is ``<client id prefix>/<group>/<n>``, and a new member takes over the session a gone
member left behind. Each slot has a retained claim, ``<prefix>/.groups/<group>/members/<n>``:

- ``live`` (with the member's id) while a member holds it; its connection's will turns it
  into ``parked`` if the member dies without saying goodbye;
- ``parked``: a session is left there, with unacknowledged messages or with the group's
  subscriptions (the last member to leave keeps them, so the group's queue lives on);
- no claim: no session.

A new member takes the lowest parked slot that no live member holds, else the lowest free
one. Two members that pick the same slot at once: the second connection takes the session
over and the first is disconnected (Mosquitto 2.0 closes it without the "session taken over"
reason code and without publishing its will, so it looks like any lost connection); before
connecting again it looks at the claim, sees the other's and moves to another slot
(``taken_over``). Claims are also how members learn that another one joined (``Members``).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Set
from dataclasses import dataclass
from typing import Literal

from omconnect.runtime.brokers.mqtt._naming import Naming
from omconnect.runtime.brokers.mqtt._server import MqttServer

ClaimState = Literal["live", "parked"]


@dataclass(frozen=True)
class Claim:
    """What a slot's retained claim says: held by ``member`` (``live``) or ``parked``."""

    state: ClaimState
    member: str | None = None


def claim_record(state: ClaimState, member: str | None = None) -> bytes:
    """The retained claim of a slot; the host and process say who holds it, for people."""
    record = {"state": state, "member": member, "host": socket.gethostname(), "pid": os.getpid()}
    return json.dumps(record).encode()


def parse_claim(
    naming: Naming, group: str, topic: str, payload: bytes
) -> tuple[int, Claim | None] | None:
    """The slot and claim of a message on ``group``'s claim topics (None: the claim was
    deleted); None for a message that is not a claim (a reader's marker)."""
    prefix, _, slot = topic.rpartition("/")
    if f"{prefix}/+" != naming.members(group) or not slot.isdigit():
        return None
    if not payload:
        return int(slot), None
    try:
        record = json.loads(payload)
        state = record["state"]
    except (ValueError, KeyError, TypeError):
        return None
    if state not in ("live", "parked"):
        return None
    return int(slot), Claim(state, record.get("member"))


async def group_claims(server: MqttServer, group: str) -> dict[int, Claim]:
    """The claims of every slot of ``group`` that has one."""
    naming = server.naming
    found = await server.read_retained(naming.members(group))
    claims = {}
    for topic, payload in found.items():
        parsed = parse_claim(naming, group, topic, payload)
        if parsed is not None and parsed[1] is not None:
            claims[parsed[0]] = parsed[1]
    return claims


def choose_slot(claims: dict[int, Claim], held_here: Set[int]) -> int:
    """The lowest parked slot, else the lowest slot without a claim; never one that a
    consumer of this process holds."""
    parked = sorted(s for s, c in claims.items() if c.state == "parked" and s not in held_here)
    if parked:
        return parked[0]
    slot = 0
    while slot in claims or slot in held_here:
        slot += 1
    return slot


def taken_over(claims: dict[int, Claim], slot: int, member: str) -> bool:
    """Whether another member holds ``slot`` now (it took this member's session over)."""
    claim = claims.get(slot)
    return claim is not None and claim.state == "live" and claim.member != member


class Members:
    """The live members of a group as its claims tell one member, and whether one joined
    since this member last looked."""

    def __init__(self, naming: Naming, group: str, me: str) -> None:
        self._naming = naming
        self._group = group
        self._me = me
        self.live: dict[int, str] = {}
        self._seen: set[str] = {me}
        self.joined = False

    def update(self, topic: str, payload: bytes, retained: bool) -> bool:
        """Take in a message of the claim topics; whether it was one. A live claim that
        arrives as it is made (not retained: the member came after this one subscribed) of a
        member not seen before sets ``joined``."""
        parsed = self._claim(topic, payload)
        if parsed is None:
            return topic.startswith(self._naming.members(self._group)[:-1])
        slot, claim = parsed
        if claim is None or claim.state != "live" or claim.member is None:
            self.live.pop(slot, None)
            return True
        self.live[slot] = claim.member
        if claim.member not in self._seen:
            self._seen.add(claim.member)
            self.joined = self.joined or not retained
        return True

    def others(self) -> bool:
        """Whether another member is live."""
        return any(member != self._me for member in self.live.values())

    def _claim(self, topic: str, payload: bytes) -> tuple[int, Claim | None] | None:
        return parse_claim(self._naming, self._group, topic, payload)
