"""drp: a dispute resolution engine for Independent Reviewing Officer services."""

__version__ = "0.1.0"
