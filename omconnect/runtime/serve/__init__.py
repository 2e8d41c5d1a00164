"""``omconnect serve``: a folder of pipelines run continuously or on schedule, with an HTTP
API in the style of Kafka Connect's, Prometheus metrics and a status page."""

from omconnect.runtime.serve.backoff import RestartBackoff
from omconnect.runtime.serve.clock import Clock, ScaledClock, SystemClock
from omconnect.runtime.serve.http_api import ServeApi
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_folder import PipelineFolderError, load_pipeline_folder
from omconnect.runtime.serve.pipeline_state import (
    PipelineCounters,
    PipelineState,
    PipelineStatus,
    RunRecord,
    RunResult,
)
from omconnect.runtime.serve.service import run_service
from omconnect.runtime.serve.supervisor import Supervisor

__all__ = [
    "Clock",
    "ManagedPipeline",
    "PipelineCounters",
    "PipelineFolderError",
    "PipelineState",
    "PipelineStatus",
    "RestartBackoff",
    "RunRecord",
    "RunResult",
    "ScaledClock",
    "ServeApi",
    "Supervisor",
    "SystemClock",
    "load_pipeline_folder",
    "run_service",
]
