"""Creating, replacing, validating and deleting pipelines over HTTP, and the commands that stop
a pipeline or run it now: the Kafka Connect-shaped part of ``serve``'s API.

=============================================  =============================================
``POST /pipelines``                            201: a new pipeline, from JSON or YAML
                                               (``Content-Type: application/yaml``): the
                                               pipeline file, or Kafka Connect's ``{"name":
                                               ..., "config": {...}}``; 409 if the name is
                                               taken; 422 with the problems
``PUT /pipelines/config/validate``             200 ``{"error_count": N, ...}``, nothing kept
``GET /pipelines/{name}/config``               the configuration, secrets masked
``PUT /pipelines/{name}/config``               201 created or 200 replaced (it restarts with
                                               the new configuration); 422 with problems
``DELETE /pipelines/{name}``                   204: stopped, its file removed, offsets kept
``PUT /pipelines/{name}/stop``                 202: STOPPED once its run ended
``POST /pipelines/{name}/run``                 202: run now (409 while it runs, is paused
                                               or stopped)
=============================================  =============================================

A pipeline's file is ``NAME.yaml`` in the pipelines folder (a pipeline loaded from another
file keeps it); the body's ``name`` must be the URL's, which a body without one takes (as
Kafka Connect's bare config map; ``pipeline_files`` reads both of its body shapes). Writes
are atomic (``pipeline_files``) and then applied as a re-read of the folder applies a change
on disk (``Supervisor.reload_folder``): the other pipelines run on untouched, and a
configuration sent again unchanged restarts nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from omconnect.runtime.config.loader import LoadedPipeline, redacted_config
from omconnect.runtime.config.problems import PipelineConfigError, Problem
from omconnect.runtime.serve.api_context import ApiContext, Endpoint, limited_body
from omconnect.runtime.serve.pipeline_files import (
    BODY_LABEL,
    PipelineBody,
    checked_pipeline,
    delete_pipeline_file,
    pipeline_body,
    pipeline_file,
    save_pipeline,
)
from omconnect.runtime.serve.pipeline_folder import PipelineFolderError


class ManagementApi:
    """The endpoints above over ``context``'s supervisor; ``endpoints()`` lists them."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context
        self.supervisor = context.supervisor
        # One change of the folder at a time: a create racing a replace of the same name
        # must not both write.
        self._writing = asyncio.Lock()

    def endpoints(self) -> list[tuple[str, str, Endpoint]]:
        """``(path, method, endpoint)`` of every endpoint, fixed paths before templates."""
        return [
            ("/pipelines", "POST", self.create),
            ("/pipelines/config/validate", "PUT", self.validate),
            ("/pipelines/{name}/config", "GET", self.config),
            ("/pipelines/{name}/config", "PUT", self.put_config),
            ("/pipelines/{name}", "DELETE", self.delete),
            ("/pipelines/{name}/stop", "PUT", self.stop),
            ("/pipelines/{name}/run", "POST", self.run_now),
        ]

    async def create(self, request: Request) -> Response:
        self.context.refuse_while_stopping()
        folder = self._folder()
        body = await self._body(request, BODY_LABEL)
        if isinstance(body, Response):
            return body
        loaded = await self._checked(body, folder, BODY_LABEL)
        if isinstance(loaded, Response):
            return loaded
        name = loaded.config.name
        async with self._writing:
            if self.supervisor.get(name) is not None:
                raise HTTPException(409, f"pipeline {name!r} already exists")
            file = self._file_for(folder, name)
            if file.exists():
                raise HTTPException(409, f"{file.name} exists in the pipelines folder already")
            saved = await self._save(body, file)
            await self._apply_folder()
        return self.context.json(201, self._described(saved, name))

    async def validate(self, request: Request) -> Response:
        body = await self._body(request, BODY_LABEL)
        if isinstance(body, Response):
            return body
        try:
            loaded = await _checked(body, self.supervisor.folder, BODY_LABEL)
        except PipelineConfigError as exc:
            return self.context.json(200, validation_report(None, exc.problems))
        return self.context.json(200, validation_report(loaded.config.name, []))

    async def config(self, request: Request) -> Response:
        return self.context.json(200, redacted_config(self.context.pipeline(request).loaded))

    async def put_config(self, request: Request) -> Response:
        self.context.refuse_while_stopping()
        folder = self._folder()
        name = request.path_params["name"]
        existing = self.supervisor.get(name)
        file = existing.loaded.path if existing is not None else self._file_for(folder, name)
        label = file.name
        body = await self._body(request, label, name)
        if isinstance(body, Response):
            return body
        loaded = await self._checked(body, folder, label)
        if isinstance(loaded, Response):
            return loaded
        if loaded.config.name != name:
            line = loaded.positions.get(("name",), (None, 0))[0]
            message = f'must be "{name}", the name in the URL (got "{loaded.config.name}")'
            return self._problems([Problem(label, line, "name", message)])
        async with self._writing:
            existing = self.supervisor.get(name)
            if existing is None and file.exists():
                holder = next(
                    (p.name for p in self.supervisor.pipelines.values() if p.loaded.path == file),
                    None,
                )
                if holder is not None:
                    raise HTTPException(409, f"{file.name} holds the pipeline {holder!r}")
            saved = await self._save(body, file)
            await self._apply_folder()
        return self.context.json(200 if existing else 201, self._described(saved, name))

    async def delete(self, request: Request) -> Response:
        self.context.refuse_while_stopping()
        pipeline = self.context.pipeline(request)
        async with self._writing:
            if self.supervisor.folder is None:
                await self.supervisor.remove(pipeline.name)
            else:
                try:
                    await delete_pipeline_file(pipeline.loaded.path)
                except OSError as exc:
                    reason = exc.strerror or type(exc).__name__
                    raise HTTPException(503, f"cannot remove its file: {reason}") from None
                await self._apply_folder()
        return Response(status_code=204)

    async def stop(self, request: Request) -> Response:
        self.context.refuse_while_stopping()
        pipeline = self.context.pipeline(request)
        pipeline.stop()
        return self.context.json(202, self.context.status(pipeline))

    async def run_now(self, request: Request) -> Response:
        self.context.refuse_while_stopping()
        pipeline = self.context.pipeline(request)
        if pipeline.running:
            raise HTTPException(409, f"pipeline {pipeline.name!r} is running already")
        if pipeline.paused:
            what = "stopped" if pipeline.stopped else "paused"
            raise HTTPException(409, f"pipeline {pipeline.name!r} is {what}; resume it first")
        pipeline.restart()
        return self.context.json(202, self.context.status(pipeline))

    async def _apply_folder(self) -> None:
        """Apply the folder as it is now, as a re-read on change or SIGHUP does: the written
        pipeline starts or restarts (only when its configuration changed), a deleted one
        stops, the others run on."""
        try:
            await self.supervisor.reload_folder()
        except PipelineFolderError as exc:
            raise HTTPException(503, f"cannot re-read the pipelines folder: {exc}") from None

    def _folder(self) -> Path:
        if self.supervisor.folder is None:
            raise HTTPException(409, "this worker serves no pipelines folder to write into")
        return self.supervisor.folder

    def _file_for(self, folder: Path, name: str) -> Path:
        try:
            return pipeline_file(folder, name)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    async def _body(
        self, request: Request, label: str, name: str | None = None
    ) -> PipelineBody | Response:
        raw = await limited_body(request)
        try:
            return pipeline_body(raw, request.headers.get("content-type"), label, name)
        except PipelineConfigError as exc:
            return self._problems(exc.problems)

    async def _checked(
        self, body: PipelineBody, folder: Path, label: str
    ) -> LoadedPipeline | Response:
        try:
            return await _checked(body, folder, label)
        except PipelineConfigError as exc:
            return self._problems(exc.problems)

    async def _save(self, body: PipelineBody, file: Path) -> LoadedPipeline:
        try:
            return await save_pipeline(body, file)
        except PipelineConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise HTTPException(503, f"cannot write {file.name}: {reason}") from None

    def _problems(self, problems: list[Problem]) -> Response:
        return self.context.json(422, validation_report(None, problems) | _error(problems))

    def _described(self, loaded: LoadedPipeline, name: str) -> dict[str, Any]:
        pipeline = self.supervisor.get(name)
        status = self.context.status(pipeline) if pipeline is not None else None
        return {
            "name": name,
            "file": loaded.path.name,
            "config": redacted_config(loaded),
            "status": status,
        }


def validation_report(name: str | None, problems: list[Problem]) -> dict[str, Any]:
    """Kafka Connect's validation answer, for a pipeline: ``error_count``, and ``configs``
    with one entry per key that has problems (``{"name": KEY, "errors": [...]}``), beside
    ``problems`` (``file``, ``line``, ``key``, ``message``, ``suggestion``, ``text``: the
    ``FILE:LINE: KEY: PROBLEM`` line ``omconnect validate`` prints)."""
    by_key: dict[str, list[str]] = {}
    for problem in problems:
        by_key.setdefault(problem.key, []).append(problem.message)
    return {
        "name": name,
        "error_count": len(problems),
        "configs": [{"name": key, "errors": errors} for key, errors in by_key.items()],
        "problems": [
            {
                "file": problem.file,
                "line": problem.line,
                "key": problem.key,
                "message": problem.message,
                "suggestion": problem.suggestion,
                "text": str(problem),
            }
            for problem in problems
        ],
    }


async def _checked(body: PipelineBody, folder: Path | None, label: str) -> LoadedPipeline:
    """``checked_pipeline``, with a folder that cannot be written answered by 503.

    Raises:
        PipelineConfigError: the pipeline is invalid.
    """
    try:
        return await checked_pipeline(body, folder, label)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HTTPException(503, f"cannot write into the pipelines folder: {reason}") from None


def _error(problems: list[Problem]) -> dict[str, Any]:
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    return {"error_code": 422, "message": f"the pipeline is invalid ({count} {noun})"}
