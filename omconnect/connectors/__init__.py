"""Built-in connectors, one subpackage per system, and the public connector API."""
