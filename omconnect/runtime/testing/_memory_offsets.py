"""An in-memory offset reader and error reporter: what the kit hands a task instead of a
pipeline's real offset store and dead letter topic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omconnect.connectors.api import Position, RecordBatch
from omconnect.connectors.api.errors import per_payload
from omconnect.schemas.position_codec import decode_position_value, encode_position_value
from omconnect.schemas.record import partition_id


class MemoryOffsetReader:
    """Offsets kept in a dict; ``commit`` plays the runtime storing acknowledged positions.

    Positions are kept as the runtime's offset store keeps them: as tagged JSON text
    (``omconnect.schemas.position_codec``), written on commit and read back on every ``get``
    and ``all``. So datetimes, dates, times, decimals, bytes and UUIDs come back as they went
    in (tuples as lists), and a connector whose positions hold anything else fails here with
    the store's ``TypeError``.
    """

    def __init__(self) -> None:
        # partition id (the partition's tagged JSON) -> the offset's tagged JSON
        self._offsets: dict[str, str] = {}

    def commit(self, positions: Iterable[Position]) -> None:
        """Store ``positions`` (later ones of a partition replace earlier ones), all or none.

        Raises:
            TypeError: a partition or offset holds a value positions cannot hold (see
                ``position_codec``); nothing is stored.
        """
        encoded = [
            (partition_id(position.partition), encode_position_value(position.offset))
            for position in positions
        ]
        self._offsets.update(encoded)

    def get(self, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        found = self._offsets.get(partition_id(partition))
        return decode_position_value(found) if found is not None else None

    def all(self) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        """Every committed (partition, offset), ordered by partition id as the store lists
        them."""
        return [
            (decode_position_value(partition), decode_position_value(offset))
            for partition, offset in sorted(self._offsets.items())
        ]


@dataclass
class ReportedRaw:
    """One payload of a ``report_raw`` call: source data that never became a row."""

    payload: bytes
    error: BaseException
    where: dict[str, Any]
    stage: str


@dataclass
class ReportedRows:
    """One ``report`` call: which rows of which batch failed, why, and where."""

    batch: RecordBatch
    rows: list[int]
    error: BaseException
    stage: str


@dataclass
class CollectingErrorReporter:
    """Keeps every report, for assertions, instead of sending it to a dead letter topic."""

    reports: list[ReportedRows] = field(default_factory=list)
    raw_reports: list[ReportedRaw] = field(default_factory=list)

    def report(
        self, batch: RecordBatch, rows: Sequence[int], error: BaseException, stage: str
    ) -> None:
        self.reports.append(ReportedRows(batch, list(rows), error, stage))

    def delivered(self) -> None:
        """Nothing to wait for: reports are kept as they are made."""

    def report_raw(
        self,
        payloads: Sequence[bytes],
        error: BaseException | Sequence[BaseException],
        where: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        stage: str = "read",
    ) -> None:
        for payload, reason, place in zip(
            payloads,
            per_payload(error, len(payloads)),
            per_payload(where, len(payloads)),
            strict=True,
        ):
            self.raw_reports.append(ReportedRaw(bytes(payload), reason, dict(place), stage))
