"""log-collector: durable log shipping through a local SQLite spool."""

__version__ = "0.1.0"

__all__ = ["__version__"]
