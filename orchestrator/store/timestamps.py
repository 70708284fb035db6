"""Times as the store writes them: ISO 8601 text in UTC, to the millisecond.

Text so that SQLite and PostgreSQL store, compare and sort them alike (`created_at >= bound`).
"""
from __future__ import annotations

import datetime as dt
import re

from orchestrator.errors import BadInputError

_RELATIVE_SINCE_RE = re.compile(r"^(\d+)\s*([dhw])$")


def now_iso() -> str:
    """Now, as the text stored in `created_at` columns."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def since_iso(since: str | dt.date | dt.datetime | None) -> str | None:
    """A lower time bound as the ISO text stored in `created_at` columns (UTC), or None.

    Accepts a date (`2026-11-25`, midnight UTC), an ISO time (`2026-11-25T12:00`, naive =
    UTC), a `datetime`/`date`, or a relative age: `36h`, `7d`, `2w` before now. An age or time
    that falls outside years 1-9999 is a BadInputError.
    """
    if since is None:
        return None
    try:
        return _utc_moment(since).astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")
    except OverflowError:
        text = str(since).strip()
        shown = text if len(text) <= 40 else text[:30] + "…" + text[-5:]
        raise BadInputError(
            f"the date or age {shown!r} is out of range: it must fall within years 1 to 9999"
        ) from None


def _utc_moment(since: str | dt.date | dt.datetime) -> dt.datetime:
    """`since` as an aware datetime (naive = UTC); OverflowError for one outside years 1-9999."""
    if isinstance(since, dt.datetime):
        return since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
    if isinstance(since, dt.date):
        return dt.datetime(since.year, since.month, since.day, tzinfo=dt.timezone.utc)
    text = str(since).strip()
    relative = _RELATIVE_SINCE_RE.match(text.lower())
    if relative:
        digits, unit = relative.group(1), relative.group(2)
        if len(digits.lstrip("0")) > 18:  # far past year 1 in any unit, and int() refuses over 4300 digits
            raise OverflowError(f"{digits} is too large")
        amount = int(digits)
        delta = {"h": dt.timedelta(hours=amount), "d": dt.timedelta(days=amount),
                 "w": dt.timedelta(weeks=amount)}[unit]
        return dt.datetime.now(dt.timezone.utc) - delta
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(
            f"cannot read the date {text!r}: use YYYY-MM-DD, an ISO time such as "
            "2026-11-25T12:00, or an age such as 7d, 36h, 2w"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
