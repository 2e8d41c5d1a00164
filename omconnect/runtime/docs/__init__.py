"""Docs generated from connector specs: one page per connector under ``docs/connectors/``."""

from omconnect.runtime.docs.connector_pages import (
    connector_names,
    render_connector_index,
    render_connector_page,
    stale_connector_pages,
    write_connector_pages,
)
from omconnect.runtime.docs.spec_options import SpecOption, spec_options

__all__ = [
    "SpecOption",
    "connector_names",
    "render_connector_index",
    "render_connector_page",
    "spec_options",
    "stale_connector_pages",
    "write_connector_pages",
]
