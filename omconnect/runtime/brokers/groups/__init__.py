"""Consumer groups for drivers whose broker has no group coordinator of its own.

Kafka's range assignor and a member's subscription (``_range_assignor``: ``Subscription``,
``range_assignment``), used by every such driver. For the drivers that keep a group as one
document on their server (nats:// in a key-value bucket, redis:// in a string): the document
(``_document``), the storage interface a driver implements on its compare-and-set
(``_storage``), the membership protocol on top of it (``_membership``: join and sync, release,
claim, fenced commits, leave), the driver's part that says who is gone (``_liveness``) and the
consumer around it (``_consumer``). The embedded broker keeps its groups in SQL tables
instead (one transaction per step, members found dead by their file locks) and shares only
the assignor and the subscription.

Imports nothing but the broker contract: the core imports it without any driver's client.
"""

from omconnect.runtime.brokers.groups._consumer import SYNC_INTERVAL, DocumentGroupConsumer
from omconnect.runtime.brokers.groups._document import GroupDocument
from omconnect.runtime.brokers.groups._liveness import MemberLiveness
from omconnect.runtime.brokers.groups._membership import GroupMember, SyncedView
from omconnect.runtime.brokers.groups._range_assignor import (
    Subscription,
    partitions_digest,
    range_assignment,
    subscribed_counts,
)
from omconnect.runtime.brokers.groups._storage import Commit, GroupAttempt, GroupStorage

__all__ = [
    "SYNC_INTERVAL",
    "Commit",
    "DocumentGroupConsumer",
    "GroupAttempt",
    "GroupDocument",
    "GroupMember",
    "GroupStorage",
    "MemberLiveness",
    "Subscription",
    "SyncedView",
    "partitions_digest",
    "range_assignment",
    "subscribed_counts",
]
