"""The package's own exception types: a leaf module (imports nothing of the package), so every floor can
raise them without an import cycle."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration value; the message names the key and the allowed values."""
