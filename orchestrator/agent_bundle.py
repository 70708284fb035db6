"""The agent file a board runs: agents/farm_agent.py with agents/farm_common.py inlined.

The agent and the controller share their protocol's constants through one module
(agents/farm_common.py). A board must still receive a single file (labgrid's rule: one upload,
one hash check, nothing to install), so the agent imports that module inside a marked block and
the upload replaces the block with the module's source. The result is written once per content
to farm's cache, named by its hash like every staged file, and the local board runs the same
file as SSH boards do.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from agents.farm_common import agent_file_name
from orchestrator.atomic import atomic_path
from orchestrator.paths import farm_cache_dir

BEGIN_MARKER = "# farm:common-begin"
END_MARKER = "# farm:common-end"


def agent_source_dir() -> Path:
    """Where the agent's sources are (agents/, installed as a package too)."""
    import agents

    return Path(agents.__file__).parent


def bundle_text() -> str:
    """The agent's source with the shared module inlined in place of its import block."""
    source_dir = agent_source_dir()
    agent = (source_dir / "farm_agent.py").read_text(encoding="utf-8")
    common = (source_dir / "farm_common.py").read_text(encoding="utf-8")
    begin, end = agent.find(BEGIN_MARKER), agent.find(END_MARKER)
    if begin < 0 or end < begin:
        raise RuntimeError(f"{source_dir / 'farm_agent.py'} lacks its {BEGIN_MARKER} ... {END_MARKER} block")
    end = agent.index("\n", end) + 1
    inlined = f"# --- agents/farm_common.py, inlined by orchestrator.agent_bundle ---\n{common.rstrip()}\n# --- end of farm_common ---\n"
    return agent[:begin] + inlined + agent[end:]


@functools.lru_cache(maxsize=1)
def _bundle() -> tuple[bytes, str]:
    data = bundle_text().encode("utf-8")
    return data, hashlib.sha256(data).hexdigest()


def agent_bundle_sha256() -> str:
    return _bundle()[1]


def agent_bundle_bytes() -> tuple[bytes, str]:
    """The bundled agent's bytes and their sha256 (what a session sends a board that lacks it)."""
    return _bundle()


def agent_bundle_path() -> Path:
    """The bundled agent file in farm's cache (`agent-<sha256[:12]>.py`), written if missing."""
    data, digest = _bundle()
    path = farm_cache_dir() / "agent" / agent_file_name(digest)
    if not path.is_file() or path.stat().st_size != len(data):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
    return path
