"""An in-memory offset reader and error reporter: what the kit hands a task instead of a
pipeline's real offset store and dead letter topic."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omconnect.connectors.api import Position, RecordBatch
from omconnect.connectors.api.errors import per_payload
from omconnect.schemas.record import partition_id


class MemoryOffsetReader:
    """Offsets kept in a dict; ``commit`` plays the runtime storing acknowledged positions.

    Offsets go through JSON on the way in, as they do in every real store, so a connector
    whose offsets are not JSON-able fails here too.
    """

    def __init__(self) -> None:
        self._offsets: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def commit(self, positions: Iterable[Position]) -> None:
        """Store ``positions`` (later ones of a partition replace earlier ones)."""
        for position in positions:
            partition = json.loads(json.dumps(dict(position.partition)))
            offset = json.loads(json.dumps(dict(position.offset)))
            self._offsets[partition_id(partition)] = (partition, offset)

    def get(self, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        found = self._offsets.get(partition_id(partition))
        return found[1] if found is not None else None

    def all(self) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        return list(self._offsets.values())


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
