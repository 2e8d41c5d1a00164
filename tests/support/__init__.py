"""Shared test helpers that are not tests: the toy connectors (registered on import), an
in-memory queue broker, file-format writers and readers, the conformance kit set up for the
file connectors, hypothesis strategies, and runners of real ``omconnect`` processes and of
``serve`` in-process."""
