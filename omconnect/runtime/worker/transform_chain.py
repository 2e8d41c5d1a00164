"""Applying a pipeline's transforms in order, dead-lettering what they cannot handle."""

from __future__ import annotations

from collections.abc import Sequence

from omconnect.connectors.api.errors import RetriableError
from omconnect.connectors.api.transform import Transform, TransformRowErrors
from omconnect.runtime.worker.dead_letter import DeadLetterQueue
from omconnect.schemas.record import RecordBatch


def apply_transforms(
    transforms: Sequence[Transform], batch: RecordBatch, dead_letters: DeadLetterQueue
) -> list[RecordBatch]:
    """Run ``batch`` through ``transforms``; a transform that routes returns several batches,
    and the next transform runs on each of them.

    A transform may raise ``TransformRowErrors``: its ``rows`` are dead-lettered and its
    ``good`` batch goes on. Any other error but ``RetriableError`` dead-letters the whole
    batch (stage ``transform``).
    """
    batches = [batch]
    for transform in transforms:
        batches = [out for b in batches for out in _apply_one(transform, b, dead_letters)]
    return batches


def _apply_one(
    transform: Transform, batch: RecordBatch, dead_letters: DeadLetterQueue
) -> list[RecordBatch]:
    try:
        result = transform.apply(batch)
    except RetriableError:
        raise
    except TransformRowErrors as errors:
        dead_letters.report_rows(batch, errors.failures(), "transform")
        return [errors.good]
    except Exception as exc:
        dead_letters.report(batch, list(range(batch.num_rows)), exc, "transform")
        return []
    return result if isinstance(result, list) else [result]
