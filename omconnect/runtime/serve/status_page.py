"""The ``GET /`` page: a table of pipelines, their states and counters, in plain HTML.

No JavaScript: the page reloads itself every few seconds. Every value is HTML-escaped; the
caller passes statuses whose secrets are already masked.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from omconnect import __version__
from omconnect.runtime.serve.pipeline_state import PipelineState, PipelineStatus, iso

REFRESH_SECONDS = 5
CONTENT_TYPE = "text/html; charset=utf-8"

_STATE_COLOURS = {
    PipelineState.RUNNING: "#1a7f37",
    PipelineState.SCHEDULED: "#0969da",
    PipelineState.PAUSED: "#9a6700",
    PipelineState.FAILED: "#cf222e",
    PipelineState.UNASSIGNED: "#57606a",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de; }
th { background: #f6f8fa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; }
.error { color: #cf222e; font-family: monospace; white-space: pre-wrap; }
.muted { color: #57606a; }
"""

_COLUMNS = (
    "Pipeline",
    "Mode",
    "State",
    "Last run",
    "Read",
    "Published",
    "Written",
    "Dead letters",
    "Restarts",
)


def render_status_page(statuses: Sequence[PipelineStatus]) -> str:
    """The whole HTML document for ``statuses``."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in _COLUMNS)
    rows = "\n".join(_row(status) for status in statuses)
    if not statuses:
        rows = f'<tr><td colspan="{len(_COLUMNS)}" class="muted">no pipelines</td></tr>'
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        "<title>omconnect</title>"
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>omconnect <span class=muted>{html.escape(__version__)}</span></h1>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>\n"
        '<p class=muted><a href="/pipelines?expand=status">JSON</a> · '
        '<a href="/metrics">metrics</a> · <a href="/health">health</a></p>\n'
        "</body></html>\n"
    )


def _row(status: PipelineStatus) -> str:
    e = html.escape
    name = e(status.name)
    link = f'<a href="/pipelines/{name}/status">{name}</a>'
    if status.description:
        link += f"<br><span class=muted>{e(status.description)}</span>"
    mode = e(status.schedule) if status.schedule else "continuous"
    if status.next_run is not None:
        mode += f"<br><span class=muted>next {e(iso(status.next_run) or '')}</span>"
    colour = _STATE_COLOURS[status.state]
    state = f'<span class=state style="color:{colour}">{e(status.state.value)}</span>'
    if status.error:
        state += f"<div class=error>{e(status.error)}</div>"
    last = status.last_run
    if last is None:
        last_run = '<span class="muted">never</span>'
    else:
        last_run = (
            f"{e(last.result.value)}<br><span class=muted>{e(iso(last.started) or '')}</span>"
        )
    counters = status.counters
    numbers = (
        counters.records_read,
        counters.records_published,
        counters.records_written,
        counters.dead_letters,
        status.restarts,
    )
    cells = "".join(f'<td class="n">{number:,}</td>' for number in numbers)
    return f"<tr><td>{link}</td><td>{mode}</td><td>{state}</td><td>{last_run}</td>{cells}</tr>"
