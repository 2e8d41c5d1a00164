"""The engine: worker loop, offsets, brokers, converters, pipeline config, CLI, testing kit."""
