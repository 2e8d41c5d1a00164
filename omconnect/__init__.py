"""omconnect: data integration connectors on the OpenMessaging standard."""

__version__ = "0.1.0"
