"""``apply_transforms``: rows a transform refuses go to the dead letter topic by the error's
type, ``TransformRowErrors`` from the connector API; the rest go on to the next transform."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
import pytest

from omconnect.connectors.api import (
    ConnectorSpec,
    RecordBatch,
    RetriableError,
    Transform,
    TransformRowErrors,
)
from omconnect.runtime.worker.dead_letter import DeadLetterQueue
from omconnect.runtime.worker.transform_chain import apply_transforms
from omconnect.schemas.arrow import from_arrow_schema


class RecordingDeadLetters(DeadLetterQueue):
    """A dead letter queue without a broker: remembers each row it was given and why
    (``report`` hands its rows to ``report_rows``)."""

    def __init__(self) -> None:
        self.rows: dict[int, BaseException] = {}

    def report_rows(
        self, batch: RecordBatch, failures: Mapping[int, BaseException], stage: str
    ) -> None:
        assert stage == "transform"
        self.rows.update(failures)


class Applies(Transform):
    """A transform whose ``apply`` is the function it is built with."""

    name = "applies"
    spec = ConnectorSpec

    def __init__(self, apply: Callable[[RecordBatch], RecordBatch]) -> None:
        super().__init__(ConnectorSpec())
        self._apply = apply

    def apply(self, batch: RecordBatch) -> RecordBatch:
        return self._apply(batch)


def batch_of(ids: list[int]) -> RecordBatch:
    values = pa.record_batch({"id": pa.array(ids, pa.int64())})
    return RecordBatch(values=values, schema=from_arrow_schema(values.schema, name="rows"))


def run(transforms: list[Transform], batch: RecordBatch) -> tuple[list[Any], RecordingDeadLetters]:
    dead = RecordingDeadLetters()
    out = apply_transforms(transforms, batch, dead)
    return [row for b in out for row in b.values.column("id").to_pylist()], dead


def refuse_odd_ids(batch: RecordBatch) -> RecordBatch:
    ids = batch.values.column("id").to_pylist()
    odd = {row: f"id {i} is odd" for row, i in enumerate(ids) if i % 2}
    if not odd:
        return batch
    raise TransformRowErrors(odd, batch.filter(pa.array([i % 2 == 0 for i in ids])))


def test_rows_a_transform_refuses_are_dead_lettered_and_the_rest_go_on() -> None:
    doubled = Applies(lambda b: batch_of([2 * i for i in b.values.column("id").to_pylist()]))
    ids, dead = run([Applies(refuse_odd_ids), doubled], batch_of([1, 2, 3, 4]))
    assert ids == [4, 8]
    assert sorted(dead.rows) == [0, 2]
    assert isinstance(dead.rows[0], ValueError) and str(dead.rows[0]) == "id 1 is odd"


def test_a_reason_given_as_an_exception_is_dead_lettered_as_it_is() -> None:
    reason = KeyError("no such customer")

    def refuse_first(batch: RecordBatch) -> RecordBatch:
        raise TransformRowErrors({0: reason}, batch.filter(pa.array([False, True])))

    ids, dead = run([Applies(refuse_first)], batch_of([1, 2]))
    assert ids == [2]
    assert dead.rows == {0: reason}


def test_an_error_that_only_looks_like_row_errors_dead_letters_the_whole_batch() -> None:
    def look_alike(batch: RecordBatch) -> RecordBatch:
        error = ValueError("not the API's type")
        error.rows = {0: "bad"}  # type: ignore[attr-defined]
        error.good = batch  # type: ignore[attr-defined]
        raise error

    ids, dead = run([Applies(look_alike)], batch_of([1, 2, 3]))
    assert ids == []
    assert sorted(dead.rows) == [0, 1, 2]
    assert str(dead.rows[1]) == "not the API's type"


def test_a_retriable_error_is_raised_for_the_loop_to_retry() -> None:
    def flaky(batch: RecordBatch) -> RecordBatch:
        raise RetriableError("lookup table busy")

    with pytest.raises(RetriableError):
        run([Applies(flaky)], batch_of([1]))


def test_row_errors_name_at_least_one_row() -> None:
    with pytest.raises(ValueError, match="at least one failed row"):
        TransformRowErrors({}, batch_of([]))
