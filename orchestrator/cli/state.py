"""Process-wide CLI state: the consoles and the --debug flag."""
from __future__ import annotations

from rich.console import Console

debug = False
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # messages stay one line: greppable
