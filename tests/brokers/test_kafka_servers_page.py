"""docs/kafka-servers.md's table of kafka:// options says what the driver does: every option
it names exists, with the default it gives."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from omconnect.runtime.brokers.kafka._options import KafkaOptions

PAGE = Path(__file__).resolve().parents[2] / "docs" / "kafka-servers.md"


def documented_defaults() -> dict[str, str]:
    """option -> the default the page's table gives it (first code span of the cell)."""
    found = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        default = re.match(r"`([^`]*)`", cells[1])
        assert default, f"no default given for {cells[0]}"
        for option in re.findall(r"`([^`]+)`", cells[0]):
            found[option] = default.group(1)
    return found


def test_every_documented_option_has_its_documented_default() -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(KafkaOptions)}
    documented = documented_defaults()
    assert len(documented) >= 10
    for option, text in documented.items():
        assert option in defaults, f"the page documents {option}, which the driver lacks"
        actual = defaults[option]
        shown = str(actual).lower() if isinstance(actual, bool) else str(actual)
        assert text == shown, f"{option}: the page says {text}, the driver has {actual}"
