"""vigil: backups for web-application servers that are never silent."""

__version__ = "0.1.0"
