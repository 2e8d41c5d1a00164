"""The benchmark smoke tests share the ``omconnect_bench`` schema and its tables: under
xdist they run on one worker, one after the other."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.xdist_group("benchmarks"))
