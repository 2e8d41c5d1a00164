"""Airflow integration: pipeline files as DAGs (being written; see issue 13)."""
