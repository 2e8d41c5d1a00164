"""Fault-injection tests with real processes: failed runs, stuck connectors, stops."""
