"""A pipeline's stored positions over HTTP, in the shape of Kafka Connect's offsets API.

=====================================  ==========================================================
``GET /pipelines/{name}/offsets``      ``{"offsets": [...]}``: source positions and sink offsets
``PATCH /pipelines/{name}/offsets``    set source positions: ``{"offsets": [{"partition": {..},
                                       "offset": {..}}]}`` (an ``offset`` of null forgets that
                                       partition); each is first accepted by the source connector
``DELETE /pipelines/{name}/offsets``   forget every source position (``?sink=true``: rewind the
                                       sink's consumer group to the start as well)
=====================================  ==========================================================

Like Kafka Connect, changes are refused with 409 unless the pipeline is STOPPED (``PUT
.../stop``, and its run has ended); they also hold the pipeline's run lock, so no other
process runs it meanwhile. On ``resume`` it starts from the changed positions. Values are
shown and read the way ``omconnect offsets list`` prints them (secrets masked, tagged values
such as ``{"$datetime": ...}``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.pipeline_positions import pipeline_offsets
from omconnect.runtime.position_changes import (
    changed_offset_store,
    rewind_sink,
    sink_rewind_refusal,
    unmasked,
    usable_position,
)
from omconnect.runtime.serve.api_context import ApiContext, Endpoint, json_body
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import PipelineState
from omconnect.runtime.state import PipelineRunningError
from omconnect.schemas.position_codec import position_from_json
from omconnect.schemas.record import Position

log = logging.getLogger("omconnect.serve.http")

COMMAND = "omconnect serve (offsets API)"


class OffsetsApi:
    """The endpoints above over ``context``'s supervisor; ``endpoints()`` lists them."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context

    def endpoints(self) -> list[tuple[str, str, Endpoint]]:
        return [
            ("/pipelines/{name}/offsets", "GET", self.get),
            ("/pipelines/{name}/offsets", "PATCH", self.patch),
            ("/pipelines/{name}/offsets", "DELETE", self.delete),
        ]

    async def get(self, request: Request) -> Response:
        pipeline = self.context.pipeline(request)
        try:
            entries = await pipeline_offsets(pipeline.loaded)
        except Exception as exc:  # an unreachable store or broker is the server's problem
            message = pipeline.describe_error(exc)
            log.warning("pipeline %s: cannot read offsets: %s", pipeline.name, message)
            raise HTTPException(503, f"cannot read the offsets: {message}") from None
        return self.context.json(200, {"offsets": entries})

    async def patch(self, request: Request) -> Response:
        pipeline = self._stopped(request)
        body = await json_body(request)
        changes = _changes(pipeline.loaded, body)
        await self._change(pipeline, _store_changes, pipeline.loaded, changes)
        return self.context.json(
            200, {"message": f"{len(changes)} source position(s) changed", "changed": len(changes)}
        )

    async def delete(self, request: Request) -> Response:
        pipeline = self._stopped(request)
        sink = request.query_params.get("sink", "false").lower()
        if sink not in ("true", "false"):
            raise HTTPException(400, "sink must be true or false")
        refusal = sink_rewind_refusal(pipeline.loaded) if sink == "true" else None
        if refusal is not None:
            raise HTTPException(422, f"sink=true: {refusal}")
        removed = await self._change(pipeline, _forget, pipeline.loaded)
        message = f"removed {removed} source position(s)"
        if sink == "true" and pipeline.loaded.sink is not None:
            await self._rewind(pipeline)
            message += "; rewound the sink's consumer group to the start"
        return self.context.json(200, {"message": message, "removed": removed})

    def _stopped(self, request: Request) -> ManagedPipeline:
        self.context.refuse_while_stopping()
        pipeline = self.context.pipeline(request)
        if pipeline.state is not PipelineState.STOPPED or pipeline.running:
            raise HTTPException(
                409,
                f"pipeline {pipeline.name!r} is {pipeline.state.value}: offsets change only "
                f"while it is STOPPED (PUT /pipelines/{pipeline.name}/stop first)",
            )
        return pipeline

    async def _change(self, pipeline: ManagedPipeline, change: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(change, *args)
        except PipelineRunningError as exc:
            raise HTTPException(409, pipeline.describe_error(exc)) from None
        except (ValueError, TypeError) as exc:
            raise HTTPException(422, pipeline.describe_error(exc)) from None
        except OSError as exc:
            raise HTTPException(503, f"cannot change the offsets: {exc.strerror}") from None

    async def _rewind(self, pipeline: ManagedPipeline) -> None:
        cfg = pipeline.loaded.config
        try:
            with changed_offset_store(pipeline.loaded, COMMAND):
                await rewind_sink(pipeline.loaded)
        except PipelineRunningError as exc:
            raise HTTPException(409, pipeline.describe_error(exc)) from None
        except Exception as exc:  # an unreachable broker is the server's problem
            message = pipeline.describe_error(exc)
            log.warning("pipeline %s: cannot rewind %s: %s", pipeline.name, cfg.broker, message)
            raise HTTPException(503, f"cannot rewind the sink: {message}") from None


def _changes(loaded: LoadedPipeline, body: Any) -> list[tuple[dict[str, Any], Position | None]]:
    """The partitions to change and their new positions (None: forget), all checked.

    Raises:
        HTTPException: 422 naming the first entry that is wrong.
    """
    entries = body.get("offsets") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise HTTPException(422, 'the body must be {"offsets": [{"partition": {}, "offset": {}}]}')
    changes: list[tuple[dict[str, Any], Position | None]] = []
    for index, entry in enumerate(entries):
        where = f"offsets[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("partition"), dict):
            raise HTTPException(422, f"{where}: needs a partition object")
        if entry.get("kind", "source") != "source":
            raise HTTPException(422, f"{where}: only source positions can be set")
        offset = entry.get("offset")
        if offset is not None and not isinstance(offset, dict):
            raise HTTPException(422, f"{where}.offset: must be an object or null")
        try:
            partition = dict(position_from_json(entry["partition"]))
            if offset is None:
                changes.append((unmasked(loaded, partition), None))
                continue
            position = Position(partition, dict(position_from_json(offset)))
            position = usable_position(loaded, position)
        except ValueError as exc:
            raise HTTPException(422, loaded.redactor.redact(f"{where}: {exc}")) from None
        changes.append((dict(position.partition), position))
    return changes


def _store_changes(
    loaded: LoadedPipeline, changes: list[tuple[dict[str, Any], Position | None]]
) -> None:
    name = loaded.config.name
    with changed_offset_store(loaded, COMMAND) as store:
        for partition, position in changes:
            if position is None:
                store.delete(name, partition)
        positions = [position for _, position in changes if position is not None]
        if positions:
            store.put(name, positions)


def _forget(loaded: LoadedPipeline) -> int:
    with changed_offset_store(loaded, COMMAND) as store:
        return store.delete(loaded.config.name, None)
