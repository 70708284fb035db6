"""bench/RESULTS.md: replace one script's `## SECTION`, keeping every other section as it is."""
from __future__ import annotations

import os
import re
from pathlib import Path


def record_section(path: Path, section: str, text: str, keep_heading: str | None = None) -> None:
    """Replace (or append) the `## {section}` part of `path` with `text` (read-modify-write,
    renamed into place). A `keep_heading` subsection found in the old part (written by something
    else than the script) is kept after the new text."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    found = pattern.search(current)
    if found:
        old = found.group(0)
        kept = old[old.index(keep_heading):].rstrip("\n") + "\n" if keep_heading and keep_heading in old else ""
        new = text + ("\n" + kept if kept else "")
        tail = current[found.end():]
        updated = current[:found.start()] + new + ("\n" if tail else "") + tail
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(updated)
    os.replace(tmp, path)
