"""Export a stored run as JSON (a list of records) or CSV; field names are a stable contract."""
from __future__ import annotations

import csv
import io
import json

from orchestrator.errors import UsageError
from orchestrator.store import EXPORT_FIELDS, Store

FORMATS = ("json", "csv")


def export_run(store: Store, run_id: str, fmt: str) -> str:
    records = store.export_records(run_id)
    if fmt == "json":
        return json.dumps(records, indent=2, default=str) + "\n"
    if fmt == "csv":
        fields = list(EXPORT_FIELDS)
        for record in records:
            fields.extend(k for k in record if k not in fields)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()
    raise UsageError(f"unknown export format {fmt!r} (use one of: {', '.join(FORMATS)})")
