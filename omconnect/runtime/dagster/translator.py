"""``OmconnectTranslator``: how a pipeline file becomes asset specs (keys, groups, kinds).

The shape of dagster-sling's and dagster-dlt's translators: subclass it and override a
method to change keys or groups. By default a pipeline's asset is what its sink writes,
keyed by the sink connector and the target (``parquet/out/orders``, ``sql/public/orders``),
or, for a pipeline that only publishes, its topic keyed by the broker
(``kafka/orders``). Its upstream is what the source reads (``csv/data/orders.csv``, or
``sql/<pipeline>`` for a source without a path), or for a pipeline that only sinks, the
topics it reads, so a topic published by one pipeline and sunk by another is one asset.
Every pipeline is its own group.
"""

from __future__ import annotations

import re
from typing import Any

import dagster as dg

from omconnect.runtime.brokers import parse_broker_url
from omconnect.runtime.config.connector_blocks import ValidatedConnector
from omconnect.runtime.config.loader import LoadedPipeline

KIND = "omconnect"


class OmconnectTranslator:
    """Maps a loaded pipeline to the specs of its assets."""

    def get_asset_spec(self, loaded: LoadedPipeline) -> dg.AssetSpec:
        """The pipeline's own asset: its sink's target, or its topic without a sink."""
        sink = loaded.sink
        kinds = {KIND, sink.registration.name if sink else self.broker_scheme(loaded)}
        return dg.AssetSpec(
            key=self.target_key(loaded),
            group_name=self.group_name(loaded),
            description=self.description(loaded),
            deps=self.upstream_keys(loaded),
            kinds=kinds,
            metadata=self.metadata(loaded),
        )

    def get_source_spec(self, loaded: LoadedPipeline) -> dg.AssetSpec | None:
        """The external asset the pipeline's source reads (None without a source)."""
        source = loaded.source
        if source is None:
            return None
        return dg.AssetSpec(
            key=self.source_key(loaded),
            group_name=self.group_name(loaded),
            description=f"What the {source.registration.name} source of pipeline "
            f"{loaded.config.name} reads (maintained outside Dagster).",
            kinds={source.registration.name},
        )

    def get_topic_spec(self, loaded: LoadedPipeline) -> dg.AssetSpec:
        """The pipeline's topic as an asset of its own: what the source tasks of a fan-out
        publish (``fan_out=True``), upstream of the sink's target."""
        deps = [self.source_key(loaded)] if loaded.source is not None else []
        return dg.AssetSpec(
            key=self.topic_key(loaded),
            group_name=self.group_name(loaded),
            description=f"Topic {loaded.config.effective_topic} (and its "
            f"{loaded.config.effective_topic}.<stream> topics), published by pipeline "
            f"{loaded.config.name}.",
            deps=deps,
            kinds={KIND, self.broker_scheme(loaded)},
            metadata=self.metadata(loaded),
        )

    def target_key(self, loaded: LoadedPipeline) -> dg.AssetKey:
        sink = loaded.sink
        if sink is None:
            return self.topic_key(loaded)
        return dg.AssetKey([sink.registration.name, *_location(sink, loaded.config.name)])

    def source_key(self, loaded: LoadedPipeline) -> dg.AssetKey:
        source = loaded.source
        assert source is not None, "a pipeline without a source has no source asset"
        return dg.AssetKey([source.registration.name, *_location(source, loaded.config.name)])

    def topic_key(self, loaded: LoadedPipeline, topic: str | None = None) -> dg.AssetKey:
        """``<broker scheme>/<topic>``: the pipeline's base topic, or ``topic``."""
        return dg.AssetKey([self.broker_scheme(loaded), topic or loaded.config.effective_topic])

    def upstream_keys(self, loaded: LoadedPipeline) -> list[dg.AssetKey]:
        """The source; without one, the topics the sink reads (none for a pattern)."""
        if loaded.source is not None:
            return [self.source_key(loaded)]
        topics, _ = loaded.config.sink_subscription
        return [self.topic_key(loaded, topic) for topic in topics]

    def group_name(self, loaded: LoadedPipeline) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", loaded.config.name)

    def broker_scheme(self, loaded: LoadedPipeline) -> str:
        try:
            return parse_broker_url(loaded.config.broker).scheme
        except ValueError:
            return "broker"

    def description(self, loaded: LoadedPipeline) -> str:
        cfg = loaded.config
        if cfg.description:
            return cfg.description
        stages = [
            loaded.source.registration.name if loaded.source else None,
            f"topic {cfg.effective_topic}",
            loaded.sink.registration.name if loaded.sink else None,
        ]
        return f"Pipeline {cfg.name}: " + " -> ".join(s for s in stages if s)

    def metadata(self, loaded: LoadedPipeline) -> dict[str, Any]:
        return {
            "omconnect/pipeline": loaded.config.name,
            "omconnect/file": str(loaded.path),
            "omconnect/topic": loaded.config.effective_topic,
        }


def _location(block: ValidatedConnector, pipeline: str) -> list[str]:
    """Key parts for what a connector reads or writes: its ``table`` option split at dots,
    or its ``path`` split at slashes (``s3://lake/orders/`` -> ``lake``, ``orders``), else
    the pipeline's name."""
    table = getattr(block.spec, "table", None)
    path = getattr(block.spec, "path", None)
    if isinstance(table, str):
        parts = table.split(".")
    elif isinstance(path, str):
        parts = re.split(r"[/\\]+", path.split("://", 1)[-1])
    else:
        parts = []
    return [p for p in parts if p not in ("", ".", "..")] or [pipeline]
