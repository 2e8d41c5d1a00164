"""The worker: runs pipelines (source -> transforms -> converter -> producer -> ack -> commit,
and consumer -> converter -> sink -> flush -> commit) on one asyncio event loop."""
