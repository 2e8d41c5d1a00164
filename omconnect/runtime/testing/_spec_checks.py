"""Checks of a connector's config spec shared by the source and sink suites."""

from __future__ import annotations

from typing import Any

import pydantic

from omconnect.connectors.api import ConnectorSpec

UNKNOWN_KEY = "no_such_option"


def check_spec_is_described(spec: type[ConnectorSpec]) -> None:
    """Every option has a description: the docs page and ``connectors describe`` need it."""
    undescribed = [
        name for name, info in spec.model_fields.items() if not (info.description or "").strip()
    ]
    assert not undescribed, f"{spec.__name__}: options without a description: {undescribed}"
    schema = spec.model_json_schema()
    assert schema.get("additionalProperties") is False, f"{spec.__name__} accepts unknown keys"


def check_unknown_key_refused(spec: type[ConnectorSpec], config: dict[str, Any]) -> None:
    """``config`` is valid, and the same config with an unknown key is refused naming it."""
    spec.model_validate(config)
    try:
        spec.model_validate({**config, UNKNOWN_KEY: 1})
    except pydantic.ValidationError as err:
        assert UNKNOWN_KEY in str(err)
    else:
        raise AssertionError(f"{spec.__name__} accepted the unknown option {UNKNOWN_KEY!r}")
