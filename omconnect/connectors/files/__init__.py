"""File sources and sinks: csv, jsonl, parquet, avro on local paths and globs."""
