"""The `opcua` device source (being written)."""
