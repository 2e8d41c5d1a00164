"""The `modbus` device source (being written)."""
