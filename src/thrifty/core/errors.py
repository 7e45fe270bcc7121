"""Error types whose message is shown to the user as one line (the CLI prints it and exits 1)."""

from __future__ import annotations


class ThriftyError(Exception):
    """A failure the user can act on: the message is complete, one line, and names what to fix."""


class ConfigError(ThriftyError):
    """A configuration value or override is invalid."""


class DataError(ThriftyError):
    """An input file or record is malformed (the message names file, line and problem)."""


class ModelError(ThriftyError):
    """A model backend or model file cannot be used."""


class TransientError(ThriftyError):
    """A failure worth retrying (timeout, connection reset, HTTP 429/5xx)."""
