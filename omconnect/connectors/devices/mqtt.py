"""The `mqtt` device source (being written)."""
