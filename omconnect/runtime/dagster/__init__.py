"""Dagster integration: pipeline files as assets (being written; see issue 13)."""
