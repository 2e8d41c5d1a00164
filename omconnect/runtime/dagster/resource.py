"""``OmconnectResource``: the settings every pipeline asset of a code location shares."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
from collections.abc import Collection, Iterator
from pathlib import Path

import dagster as dg
from pydantic import Field

from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline
from omconnect.runtime.config.model import PipelineConfig
from omconnect.runtime.dagster.run_summary import RunSummary, summarise
from omconnect.runtime.worker.collector import batch_collections
from omconnect.runtime.worker.runner import PipelineRunner

RESOURCE_KEY = "omconnect"
"""The resource key the pipeline assets require."""

_CHDIR = threading.RLock()


class OmconnectResource(dg.ConfigurableResource):
    """Runs pipeline files once, as ``omconnect run --once`` does, with shared overrides.

    Every field is optional: unset, each pipeline's own ``state:`` and ``broker:`` apply and
    relative paths in pipeline files (data, ``state:``, ``embedded://``) are resolved against
    the process's working directory, as for the CLI. Secrets come in through
    ``dg.EnvVar("NAME")``.
    """

    state: str | None = Field(
        default=None,
        description="Where offsets and the embedded schema registry live, for every "
        "pipeline: a directory, or a postgresql:// URL that many workers share.",
    )
    broker: str | None = Field(
        default=None,
        description="The broker URL every pipeline uses instead of its own broker: "
        "(kafka://host:9092, embedded://path, ...).",
    )
    working_dir: str | None = Field(
        default=None,
        description="The directory relative paths in pipeline files are resolved against "
        "(default: the process's working directory).",
    )

    def load(self, path: str | Path) -> LoadedPipeline:
        """The pipeline file at ``path`` with this resource's overrides applied.

        Raises:
            PipelineConfigError: the file (or an override) is not valid.
        """
        with self.working_directory():
            return self._load(path)

    def run(
        self, loaded: LoadedPipeline, tasks: Collection[int] | None = None, sink: bool = True
    ) -> RunSummary:
        """Run ``loaded`` (from ``load``) once, ``tasks`` and ``sink`` as for
        ``PipelineRunner``, and summarise what the run did.

        Raises:
            PipelineRunningError: the pipeline (or one of ``tasks``) runs elsewhere.
            Exception: whatever failed the run, as ``omconnect run`` would report it.
        """
        with self.working_directory(), batch_collections():
            return asyncio.run(_run_once(loaded, tasks, sink))

    @contextlib.contextmanager
    def working_directory(self) -> Iterator[None]:
        """Within: the process works in ``working_dir`` (one such block at a time, as the
        working directory is the whole process's)."""
        if self.working_dir is None:
            yield
            return
        with _CHDIR:
            before = Path.cwd()
            os.chdir(self.working_dir)
            try:
                yield
            finally:
                os.chdir(before)

    def _load(self, path: str | Path) -> LoadedPipeline:
        loaded = load_pipeline(path)
        overrides = {
            key: value
            for key, value in (("state", self.state), ("broker", self.broker))
            if value is not None
        }
        if not overrides:
            return loaded
        for value in overrides.values():
            loaded.redactor.add_url_passwords(value)
        config = PipelineConfig.model_validate({**loaded.config.model_dump(), **overrides})
        return dataclasses.replace(loaded, config=config)


async def _run_once(
    loaded: LoadedPipeline, tasks: Collection[int] | None, sink: bool
) -> RunSummary:
    runner = PipelineRunner(loaded, once=True, command="dagster", tasks=tasks, sink=sink)
    metrics = await runner.run()
    ran_source = loaded.source is not None and (tasks is None or bool(tasks))
    return await summarise(loaded, metrics, ran_source, runner.runs_sink)
