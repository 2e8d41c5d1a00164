"""The engine: worker loop, brokers, converters, pipeline config, state (offsets, schemas),
CLI, testing kit."""
