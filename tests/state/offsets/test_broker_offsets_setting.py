"""The pipeline setting ``offsets: state | broker``: ``state`` by default; ``broker`` only on a
broker that has an offset store (kafka://, nats://), else one line of config error naming
them. The stores themselves are tested in test_offset_store_contract.py and
tests/brokers/test_broker_offset_stores.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from omconnect.runtime.config.model import PipelineConfig
from omconnect.runtime.state import StateUnavailableError
from omconnect.runtime.state.backends import (
    open_existing_pipeline_offset_store,
    open_pipeline_offset_store,
)
from omconnect.runtime.state.offsets import SqliteOffsetStore
from omconnect.runtime.state.offsets.broker_stores import (
    BROKER_OFFSET_STORES,
    BrokerOffsetsUnavailableError,
    open_broker_offset_store,
)
from tests.support.omconnect_process import omconnect

SOURCE = {"connector": "csv", "path": "in.csv"}
REFUSED = (
    "offsets: broker needs a broker that stores offsets, kafka:// (a compacted topic) or "
    "nats:// (a key-value bucket); {scheme}:// has none (use offsets: state)"
)


def test_offsets_are_in_the_state_by_default(tmp_path: Path) -> None:
    cfg = PipelineConfig.model_validate({"name": "p", "source": SOURCE})
    assert cfg.offsets == "state"
    store = open_pipeline_offset_store(tmp_path / "state", cfg.offsets, cfg.broker)
    assert isinstance(store, SqliteOffsetStore)
    store.close()


@pytest.mark.parametrize(
    "broker",
    ["kafka://localhost:9092", "oms:kafka://h1:9092,h2:9092", "nats://localhost:4222"],
)
def test_offsets_broker_is_accepted_on_kafka_and_nats(broker: str) -> None:
    cfg = PipelineConfig.model_validate(
        {"name": "p", "broker": broker, "offsets": "broker", "source": SOURCE}
    )
    assert cfg.offsets == "broker"


@pytest.mark.parametrize(
    ("broker", "scheme"),
    [
        ("embedded://.omconnect", "embedded"),
        ("amqp://guest:guest@localhost:5672/", "amqp"),
        ("mqtt://localhost:1883", "mqtt"),
        ("oms:redis://localhost:6379", "redis"),
    ],
)
def test_offsets_broker_on_a_broker_without_a_store_is_refused(broker: str, scheme: str) -> None:
    with pytest.raises(ValidationError) as refused:
        PipelineConfig.model_validate(
            {"name": "p", "broker": broker, "offsets": "broker", "source": SOURCE}
        )
    [error] = refused.value.errors()
    assert error["msg"] == "Value error, " + REFUSED.format(scheme=scheme)
    assert "guest" not in str(refused.value)
    # Opened past the config (a caller that did not validate), it says the same.
    with pytest.raises(StateUnavailableError, match=r"kafka:// \(a compacted topic\) or nats://"):
        open_pipeline_offset_store(".omconnect", "broker", broker)
    with pytest.raises(StateUnavailableError, match="has none"):
        open_existing_pipeline_offset_store(".omconnect", "broker", broker)


def test_the_refusal_names_every_broker_that_has_a_store() -> None:
    with pytest.raises(BrokerOffsetsUnavailableError) as refused:
        open_broker_offset_store("redis://localhost:6379")
    assert all(f"{scheme}://" in str(refused.value) for scheme in BROKER_OFFSET_STORES)


def test_omconnect_says_it_in_one_line_before_running(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id\n1\n")
    (tmp_path / "p.yaml").write_text(
        "name: p\nbroker: embedded://.omconnect\noffsets: broker\n"
        "source: {connector: csv, path: in.csv}\n"
    )
    commands = [("validate", "p.yaml"), ("run", "p.yaml", "--once"), ("offsets", "list", "p.yaml")]
    for command in commands:
        refused = omconnect(*command, cwd=tmp_path)
        assert refused.returncode != 0, refused.stderr
        assert refused.stderr.strip() == "p.yaml:1: " + REFUSED.format(scheme="embedded")
    assert not (tmp_path / ".omconnect").exists(), "nothing ran"


def test_the_pipeline_schema_offers_the_setting() -> None:
    schema = json.loads((Path(__file__).parents[3] / "docs" / "pipeline.schema.json").read_text())
    offsets = schema["properties"]["offsets"]
    assert offsets["enum"] == ["state", "broker"] and offsets["default"] == "state"
