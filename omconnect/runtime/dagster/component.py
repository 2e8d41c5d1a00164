"""``OmconnectPipelineComponent``: a ``defs.yaml`` that points at a pipeline file.

```yaml
type: omconnect.runtime.dagster.OmconnectPipelineComponent
attributes:
  pipeline: pipelines/orders-to-lake.yaml
  dead_letter_tolerance: 10        # optional, as every attribute below
  broker: "{{ env.BROKER_URL }}"
```

The pipeline file stays the one definition: the component builds what
``pipeline_definitions`` builds from it (assets, checks, job, schedule or sensor, and an
``OmconnectResource``).
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from omconnect.runtime.dagster.definitions import pipeline_definitions
from omconnect.runtime.dagster.resource import OmconnectResource


class OmconnectPipelineComponent(dg.Component, dg.Model, dg.Resolvable):
    """One omconnect pipeline file as Dagster definitions."""

    pipeline: str = Field(
        description="The pipeline file: absolute, or relative to this defs.yaml's folder "
        "or, when not there, to the project root."
    )
    working_dir: str | None = Field(
        default=None,
        description="Where relative paths in the pipeline file are resolved (default: the "
        "project root, where `omconnect run` would be run).",
    )
    state: str | None = Field(default=None, description="Overrides the pipeline's state:.")
    broker: str | None = Field(default=None, description="Overrides the pipeline's broker:.")
    dead_letter_tolerance: int = Field(
        default=0, ge=0, description="Dead letters a run may produce before its check fails."
    )
    fan_out: bool | None = Field(
        default=None,
        description="Partition the topic by source task (default: when tasks: is above 1).",
    )
    running: bool = Field(
        default=True, description="Whether the schedule or sensor starts running."
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        resource = OmconnectResource(
            state=self.state,
            broker=self.broker,
            working_dir=self.working_dir or str(context.project_root),
        )
        return pipeline_definitions(
            self.pipeline_path(context),
            resource=resource,
            dead_letter_tolerance=self.dead_letter_tolerance,
            fan_out=self.fan_out,
            running=self.running,
        )

    def pipeline_path(self, context: dg.ComponentLoadContext) -> Path:
        """The pipeline file this component points at."""
        path = Path(self.pipeline)
        if path.is_absolute():
            return path
        beside = context.path / path
        return beside if beside.exists() else Path(context.project_root) / path
