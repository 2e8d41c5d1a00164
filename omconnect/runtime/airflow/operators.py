"""``OmconnectRunOperator``: one pipeline file run as an Airflow task.

The run is ``omconnect run PIPELINE --once`` (or ``--task N --no-sink``, ``--sink-only``)
done by the same ``PipelineRunner``: offsets, schemas, dead letters and exactly-once sinks
behave as on the command line, and a second run resumes where the first committed. The task's
XCom is the run's summary (``pipeline_run.summary``).

Failures: a pipeline file that does not load fails the task without retries (a retry cannot
fix it); any other failure (a source or sink that cannot be reached, a file not there yet,
the pipeline already running elsewhere) raises ``AirflowException``, so the task's
``retries`` apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
)

from omconnect.runtime.airflow.pipeline_run import PipelineBusyError, RunRequest, run_pipeline
from omconnect.runtime.airflow.secrets import mask_in_airflow_logs, register_airflow_resolvers
from omconnect.runtime.airflow.triggers import OmconnectRunTrigger
from omconnect.runtime.config.problems import PipelineConfigError


class OmconnectRunOperator(BaseOperator):
    """Runs one omconnect pipeline file once and returns its summary as XCom.

    Args:
        pipeline: The pipeline file, relative to ``working_dir`` (templated).
        tasks: Run only these source tasks (indexes from 0, as the source splits its work);
            ``[]`` runs the sink alone; None runs every task. Mapped tasks expand over it.
        sink: False leaves the sink out (the fan-out before a ``tasks=[]`` sink task).
        working_dir: Where the pipeline's relative paths (``state:``, ``path:``,
            ``embedded://``) start, as the directory ``omconnect run`` is started in
            (templated; default: the worker's working directory).
        deferrable: Wait in the triggerer instead of a worker slot: the run goes to an
            ``OmconnectRunTrigger`` (for streaming sources, with ``until_records``).
        until_records: With ``deferrable``: run the streaming pipeline until this many records
            were written (published, without a sink), then stop cleanly; None: until caught
            up (``--once``).
        poll_interval: With ``deferrable``: seconds between tries while the pipeline runs
            elsewhere.
        deferral_timeout: With ``deferrable``: fail the task when the condition is not met
            within this time (None: no limit).
    """

    template_fields: Sequence[str] = ("pipeline", "working_dir")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        pipeline: str,
        tasks: list[int] | None = None,
        sink: bool = True,
        working_dir: str | None = None,
        deferrable: bool = False,
        until_records: int | None = None,
        poll_interval: float = 5.0,
        deferral_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if until_records is not None and not deferrable:
            raise ValueError("until_records needs deferrable=True (a streaming run)")
        self.pipeline = pipeline
        self.tasks = tasks
        self.sink = sink
        self.working_dir = working_dir
        self.deferrable = deferrable
        self.until_records = until_records
        self.poll_interval = poll_interval
        self.deferral_timeout = deferral_timeout

    def execute(self, context: Any) -> dict[str, Any]:
        if self.deferrable:
            trigger = OmconnectRunTrigger(
                pipeline=self.pipeline,
                working_dir=self.working_dir,
                tasks=self.tasks,
                sink=self.sink,
                until_records=self.until_records,
                poll_interval=self.poll_interval,
            )
            self.defer(
                trigger=trigger, method_name="execute_complete", timeout=self.deferral_timeout
            )
        register_airflow_resolvers()
        request = RunRequest(
            self.pipeline,
            self.working_dir,
            tuple(self.tasks) if self.tasks is not None else None,
            self.sink,
        )
        try:
            summary = run_pipeline(
                request, on_loaded=lambda p: mask_in_airflow_logs(p.redactor.secrets)
            )
        except PipelineConfigError as exc:
            raise AirflowFailException(str(exc)) from None
        except (PipelineBusyError, RuntimeError) as exc:
            raise AirflowException(str(exc)) from None
        self.log.info("%s", summary_line(summary))
        return summary

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resumes the task when its trigger fired: the summary, or the run's failure."""
        status = event.get("status")
        if status == "success":
            summary: dict[str, Any] = event["summary"]
            self.log.info("%s", summary_line(summary))
            return summary
        if status == "invalid":
            raise AirflowFailException(event.get("message", "the pipeline file does not load"))
        raise AirflowException(event.get("message", f"unexpected trigger event {event!r}"))


def summary_line(summary: dict[str, Any]) -> str:
    """The summary as one log line (the counters of ``omconnect run``'s last line)."""
    return (
        f"pipeline={summary['pipeline']} read={summary['records_read']} "
        f"published={summary['records_published']} written={summary['records_written']} "
        f"dead_lettered={summary['dead_letters']} bytes={summary['bytes_published']} "
        f"positions={summary['positions_committed']} duration={summary['duration_seconds']}s"
    )
