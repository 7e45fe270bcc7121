"""Error types whose message is shown to the user as one line (the CLI prints it and exits 1)."""

from __future__ import annotations

from collections.abc import Iterable


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


def check_choice(kind: str, value: object, allowed: Iterable[object]) -> None:
    """Raise a one-line :class:`ConfigError` naming ``kind``, the bad ``value`` and the choices when ``value`` is
    not one of ``allowed``."""
    choices = list(allowed)
    if value not in choices:
        raise ConfigError(f"unknown {kind} {value!r}; choose one of {', '.join(map(str, choices)) or '(none)'}")
