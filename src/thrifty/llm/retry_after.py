"""Reading an HTTP ``Retry-After`` header value as a wait in seconds.

The header (RFC 9110 §10.2.3) is either delta-seconds (``"120"``) or an HTTP-date
(``"Wed, 21 Oct 2015 07:28:00 GMT"``). Fractional seconds (``"0.5"``) are accepted too, since some servers send them.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_DELTA = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def retry_after_seconds(value: str | None, now: datetime | None = None, max_s: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value, or None when it is missing or unreadable.

    ``value`` is delta-seconds or an HTTP-date; a date in the past gives 0.0, never a negative wait. ``now`` is the
    reference time for dates (default: the current UTC time; a naive datetime is taken as UTC). ``max_s``, when
    given, caps the result.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA.fullmatch(text):
        secs = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
        ref = now if now is not None else datetime.now(UTC)
        secs = (_as_utc(when) - _as_utc(ref)).total_seconds()
    if not math.isfinite(secs):
        return None
    secs = max(0.0, secs)
    return secs if max_s is None else min(secs, max(0.0, max_s))


def _as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware datetime, reading a naive one as UTC (HTTP-dates are always GMT)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
