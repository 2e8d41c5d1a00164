"""``omconnect serve``: a folder of pipelines run continuously or on schedule, with an HTTP
API in the style of Kafka Connect's (behind a bearer token), Prometheus metrics and a status
page."""

from omconnect.runtime.serve.access_guard import ApiAccess
from omconnect.runtime.serve.api_token import ApiToken, ApiTokenError, resolve_api_token
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
from omconnect.runtime.serve.uvicorn_server import TlsError, TlsFiles

__all__ = [
    "ApiAccess",
    "ApiToken",
    "ApiTokenError",
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
    "TlsError",
    "TlsFiles",
    "load_pipeline_folder",
    "resolve_api_token",
    "run_service",
]
