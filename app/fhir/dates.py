"""FHIR date, dateTime and instant values as UTC ranges.

A FHIR date has a precision, so it stands for an interval: ``2024-03`` is all of March. Search
compares intervals (R4 search.html §3.1.1.5.7), so both stored values and query values are
turned into ``[start, end]`` with ``end`` the last microsecond of the interval. Values without
a zone are taken as UTC.
"""
from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

UTC = timezone.utc
MIN = datetime(1, 1, 1, tzinfo=UTC)
MAX = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@lru_cache(maxsize=4096)
def parse_range(text: str) -> tuple[datetime, datetime]:
    """Return the UTC interval a FHIR date/dateTime/instant denotes; ValueError if malformed.
    Cached: the same dates come back on every line, claim and search of a visit."""
    m = _DATE_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a FHIR date or dateTime: {text!r}")
    y = int(m["y"])
    if m["m"] is None:
        return datetime(y, 1, 1, tzinfo=UTC), datetime(y, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    mo = int(m["m"])
    if m["d"] is None:
        last = calendar.monthrange(y, mo)[1]
        return datetime(y, mo, 1, tzinfo=UTC), datetime(y, mo, last, 23, 59, 59, 999999, tzinfo=UTC)
    d = int(m["d"])
    if m["H"] is None:
        start = datetime(y, mo, d, tzinfo=UTC)
        return start, start + timedelta(days=1, microseconds=-1)
    tz = UTC
    if m["tz"] and m["tz"] != "Z":
        sign = 1 if m["tz"][0] == "+" else -1
        hh, mm = int(m["tz"][1:3]), int(m["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    if m["S"] is None:
        start = datetime(y, mo, d, int(m["H"]), int(m["M"]), tzinfo=tz)
        span = timedelta(minutes=1)
    elif m["f"] is None:
        start = datetime(y, mo, d, int(m["H"]), int(m["M"]), int(m["S"]), tzinfo=tz)
        span = timedelta(seconds=1)
    else:
        digits = m["f"][:6]
        micro = int(digits.ljust(6, "0"))
        start = datetime(y, mo, d, int(m["H"]), int(m["M"]), int(m["S"]), micro, tzinfo=tz)
        span = timedelta(microseconds=10 ** (6 - len(digits)))
    try:
        start = start.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is in the year 10000 in UTC
        raise ValueError(f"{text!r} is outside the years 0001-9999 in UTC") from None
    return start, (MAX if MAX - start < span else start + span - timedelta(microseconds=1))


def instant(dt: datetime) -> str:
    """Format an aware datetime as a FHIR instant in UTC with microseconds."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def http_date(dt: datetime) -> str:
    """RFC 9110 IMF-fixdate for Last-Modified."""
    return dt.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
