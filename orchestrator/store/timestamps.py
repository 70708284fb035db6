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
    UTC), a `datetime`/`date`, or a relative age: `36h`, `7d`, `2w` before now.
    """
    if since is None:
        return None
    if isinstance(since, dt.datetime):
        moment = since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
    elif isinstance(since, dt.date):
        moment = dt.datetime(since.year, since.month, since.day, tzinfo=dt.timezone.utc)
    else:
        text = str(since).strip()
        relative = _RELATIVE_SINCE_RE.match(text.lower())
        if relative:
            amount, unit = int(relative.group(1)), relative.group(2)
            delta = {"h": dt.timedelta(hours=amount), "d": dt.timedelta(days=amount),
                     "w": dt.timedelta(weeks=amount)}[unit]
            moment = dt.datetime.now(dt.timezone.utc) - delta
        else:
            try:
                moment = dt.datetime.fromisoformat(text)
            except ValueError:
                raise BadInputError(
                    f"cannot read the date {text!r}: use YYYY-MM-DD, an ISO time such as "
                    "2026-11-25T12:00, or an age such as 7d, 36h, 2w"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")

