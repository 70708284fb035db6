"""Board profiles: which real board each simulated one stands for, and the limits that make it so.

The numbers are for a 2-core, 24 GiB x86 host. An x86 core cannot be made to run at an
Arm core's speed, so the profiles keep the *ordering and rough ratios* of the real
boards' CPU inference speed, not their absolute speed, and scale RAM by 1/4 so three
boards fit next to everything else and the out-of-memory path is easy to reach:

| profile     | models                                          | CPU quota | pinned to | memory |
|-------------|-------------------------------------------------|-----------|-----------|--------|
| rpi4        | Raspberry Pi 4 B: 4x Cortex-A72 1.5 GHz, 4 GB   | 0.5 core  | 1 core    | 1 GiB  |
| jetson-nano | Jetson Nano: 4x Cortex-A57 1.43 GHz, 4 GB (GPU) | 0.4 core  | 1 core    | 1 GiB  |
| snapdragon  | Snapdragon devkit (RB5 class): 8x Kryo, 8 GB    | 1.5 cores | 2 cores   | 2 GiB  |
| quad        | a 4-core board, for thread sweeps               | none      | 4 cores*  | 1 GiB  |
| unlimited   | this machine                                    | none      | none      | none   |
| bare        | a board whose Python lacks onnxruntime          | none      | none      | none   |

- rpi4 is the baseline: 0.5 core (`cfs_quota_us` 50000 / `cfs_period_us` 100000).
- jetson-nano: its A57 cores are ~20 % slower than the Pi's A72 on CPU inference; its
  GPU, the reason to buy one, is not simulated, so on farm's CPU runs it is a bit
  slower than the Pi (0.4 core), as a real one is with onnxruntime's CPU provider.
- snapdragon: a Kryo big core is ~3x an A72, so it gets 3x the Pi's quota (1.5 cores).
- Single-core profiles are pinned round-robin to the host's cores (rpi4 -> CPU 0,
  jetson-nano -> CPU 1); snapdragon spans both. Boards that run at the same time share
  cores, as on any shared host: compare boards from sequential runs.
- quad is for `--threads` sweeps: its threads must be able to run in parallel, so it gets whole
  host cores and no quota (a quota caps the sum, not each thread: 4 × 0.5 core of quota would
  still let one thread run at a full core). *It is pinned to up to 4 host cores: on this 2-core
  host that is 2, and its facts say so (cpuset_cpus, cpu_cores_available) — a sweep to 4
  threads here shows 4 threads sharing 2 cores, not a 4-core board.
- Memory is RAM / 4 (1, 1, 2 GiB): a process past it is OOM-killed (exit 137).
  The host has no swap; `memory.memsw.limit_in_bytes` is set too where it exists.
- `<profile>:bare` (or the `bare` profile) gives a board whose python is the system
  `/usr/bin/python3` without numpy/onnxruntime, for the missing-runtime path.

CPU quotas use the kernel's default 100 ms period (LAB.md: 50000/100000 doubles run time).
Work shorter than the quota slice can run at full speed and then stall, so a tiny model's
median barely moves while its p99 grows; models that run for tens of ms slow down evenly.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from orchestrator.lab.errors import LabError

GIB = 1024**3
CPU_PERIOD_US = 100_000
DEFAULT_PROFILES = ("rpi4", "jetson-nano", "snapdragon")
DEFAULT_EMULATED_PROFILES = ("unlimited",)


@dataclasses.dataclass(frozen=True)
class Profile:
    """A simulated board type. None means "no limit" for that resource."""

    name: str
    models: str
    cpu_quota_cores: float | None
    pinned_cores: int | None
    memory_limit_bytes: int | None
    bare: bool = False


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("rpi4", "Raspberry Pi 4 Model B (4x Cortex-A72 @ 1.5 GHz, 4 GB)", 0.5, 1, 1 * GIB),
        Profile(
            "jetson-nano", "NVIDIA Jetson Nano (4x Cortex-A57 @ 1.43 GHz, 4 GB shared with the GPU)", 0.4, 1, 1 * GIB
        ),
        Profile("snapdragon", "Qualcomm Snapdragon devkit, RB5 class (8x Kryo 585, 8 GB)", 1.5, 2, 2 * GIB),
        Profile("quad", "a 4-core board for thread sweeps: up to 4 whole host cores, no quota", None, 4, 1 * GIB),
        Profile("unlimited", "this machine, no limits", None, None, None),
        Profile("bare", "this machine, no limits, system Python without onnxruntime", None, None, None, bare=True),
    )
}


@dataclasses.dataclass(frozen=True)
class BoardLimits:
    """The limits a board runs under, as written to its cgroups (None: not limited)."""

    cpu_quota_cores: float | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    cpuset_cpus: str | None = None
    memory_limit_bytes: int | None = None


def parse_profiles(specs: list[str] | tuple[str, ...]) -> list[tuple[Profile, bool]]:
    """`["rpi4", "jetson-nano:bare"]` -> [(profile, bare?)]. Raises LabError naming the choices."""
    parsed = []
    for raw in specs:
        spec = raw.strip()
        if not spec:
            continue
        name, _, option = spec.partition(":")
        if name not in PROFILES:
            raise LabError(f"unknown board profile {name!r}: choose from {', '.join(PROFILES)}")
        if option not in ("", "bare"):
            raise LabError(f"profile {spec!r}: the only option is ':bare' (system Python without onnxruntime)")
        profile = PROFILES[name]
        parsed.append((profile, profile.bare or option == "bare"))
    if not parsed:
        raise LabError(f"no board profile given: choose from {', '.join(PROFILES)}")
    return parsed


def pinned_cpusets(profiles: Sequence[Profile], cpus: list[int]) -> list[str | None]:
    """Each board's `cpuset.cpus` (None: not pinned), the host's cores handed out round-robin."""
    cpusets: list[str | None] = []
    pin_offset = 0
    for profile in profiles:
        cpuset = None
        if profile.pinned_cores is not None:
            chosen = [cpus[(pin_offset + i) % len(cpus)] for i in range(min(profile.pinned_cores, len(cpus)))]
            cpuset = ",".join(str(c) for c in sorted(set(chosen)))
            pin_offset += profile.pinned_cores
        cpusets.append(cpuset)
    return cpusets


def limits_for(profile: Profile, cpuset: str | None) -> BoardLimits:
    """The cgroup limits of a board of `profile` pinned to `cpuset`."""
    quota_us = None if profile.cpu_quota_cores is None else int(profile.cpu_quota_cores * CPU_PERIOD_US)
    return BoardLimits(
        cpu_quota_cores=profile.cpu_quota_cores,
        cpu_quota_us=quota_us,
        cpu_period_us=CPU_PERIOD_US if quota_us is not None else None,
        cpuset_cpus=cpuset,
        memory_limit_bytes=profile.memory_limit_bytes,
    )
