"""The ``sql`` connector for PostgreSQL, MariaDB/MySQL and SQLite (SQLAlchemy URLs).

``_database`` is what the source and the sink share (engine, error messages, reflection,
quoted names); ``source`` is the ``sql`` source.
"""
