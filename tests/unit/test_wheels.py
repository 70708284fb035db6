"""Wheel selection on the controller (orchestrator.provision.wheels): pure logic, no network, no board.

The architecture and platform tags decide which wheels a board gets; the set key names the cached
sets on disk; `resolve_wheels` must answer from a cache it can trust without asking pip. pip is
replaced by a fake that records its calls, so a test that expects no download fails if one happens.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orchestrator.provision import ProvisionError, wheels
from orchestrator.provision.wheels import (
    BoardPython,
    Wheel,
    WheelSet,
    resolve_wheels,
    wheel_arch,
    wheel_platforms,
    wheel_set_key,
)

PINNED = {"numpy": "1.26.4", "onnxruntime": "1.17.0"}
PINNED_REQUIREMENTS = ("pip", "numpy==1.26.4", "onnxruntime==1.17.0")
NEWEST_REQUIREMENTS = ("pip", "numpy", "onnxruntime")


# ---------------------------------------------------------------------------------- architecture


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "armv7l", "i686"])
def test_wheel_arch_keeps_a_64_bit_pythons_machine(machine):
    assert wheel_arch(machine) == machine
    assert wheel_arch(f"  {machine.upper()}\n") == machine  # `uname -m` output as it comes


@pytest.mark.parametrize("machine, arch", [("arm64", "aarch64"), ("amd64", "x86_64"), ("i386", "i686"),
                                           ("i586", "i686"), ("armv8l", "armv7l")])
def test_wheel_arch_maps_other_names_for_the_same_machine(machine, arch):
    assert wheel_arch(machine) == arch


@pytest.mark.parametrize("machine, arch", [("aarch64", "armv7l"), ("arm64", "armv7l"), ("x86_64", "i686"),
                                           ("armv7l", "armv7l"), ("i686", "i686")])
def test_wheel_arch_follows_a_32_bit_python_not_the_64_bit_kernel(machine, arch):
    # Raspberry Pi OS 32-bit on a Pi 4: the kernel says aarch64, pip needs armv7l wheels.
    assert wheel_arch(machine, pointer_bits=32) == arch


@pytest.mark.parametrize("machine", ["", "x86-64 (weird)", "arm/v7"])
def test_wheel_arch_refuses_what_is_not_an_architecture(machine):
    with pytest.raises(ProvisionError) as caught:
        wheel_arch(machine)
    assert caught.value.kind == "unsupported"


# ---------------------------------------------------------------------------------- platform tags


def test_x86_platforms_go_from_the_boards_glibc_down_to_manylinux1_with_each_legacy_alias_after_its_glibc():
    assert wheel_platforms("x86_64", (2, 13)) == [
        "manylinux_2_13_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux_2_11_x86_64",
        "manylinux_2_10_x86_64", "manylinux_2_9_x86_64", "manylinux_2_8_x86_64", "manylinux_2_7_x86_64",
        "manylinux_2_6_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64",
    ]
    assert wheel_platforms("i686", (2, 5)) == ["manylinux_2_5_i686", "manylinux1_i686"]


def test_x86_platforms_for_a_new_glibc_are_newest_first_and_complete():
    tags = wheel_platforms("x86_64", (2, 31))
    minors = [int(t.split("_")[2]) for t in tags if t.startswith("manylinux_2_")]
    assert minors == list(range(31, 4, -1))  # every glibc from the board's down to 2.5, newest first
    assert tags[tags.index("manylinux_2_17_x86_64") + 1] == "manylinux2014_x86_64"
    assert tags[tags.index("manylinux_2_12_x86_64") + 1] == "manylinux2010_x86_64"
    assert tags[-1] == "manylinux1_x86_64"
    assert len(tags) == len(minors) + 3


def test_arm_platforms_stop_at_glibc_2_17_the_oldest_manylinux_for_arm():
    assert wheel_platforms("aarch64", (2, 19)) == [
        "manylinux_2_19_aarch64", "manylinux_2_18_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64",
    ]
    assert wheel_platforms("armv7l", (2, 17)) == ["manylinux_2_17_armv7l", "manylinux2014_armv7l"]
    assert wheel_platforms("aarch64", (2, 36))[0] == "manylinux_2_36_aarch64"


@pytest.mark.parametrize("arch, glibc", [("x86_64", (2, 31)), ("aarch64", (2, 36)), ("armv7l", (2, 28))])
def test_no_plain_linux_tag_is_ever_asked_for(arch, glibc):
    # linux_<arch> wheels are local builds with no promise about the C library: never pushed to a board.
    tags = wheel_platforms(arch, glibc) + wheel_platforms(arch, None, musl=True)
    assert not [t for t in tags if t.startswith("linux_")]


def test_musl_platforms_are_musllinux_newest_first_and_glibc_wins_when_both_are_seen():
    assert wheel_platforms("aarch64", None, musl=True) == [
        "musllinux_1_2_aarch64", "musllinux_1_1_aarch64", "musllinux_1_0_aarch64",
    ]
    assert wheel_platforms("x86_64", (2, 28), musl=True)[0] == "manylinux_2_28_x86_64"


@pytest.mark.parametrize("glibc, musl", [((2, 4), False), ((3, 0), False), ((1, 30), False), (None, False)])
def test_a_c_library_no_binary_wheel_fits_is_refused(glibc, musl):
    with pytest.raises(ProvisionError) as caught:
        wheel_platforms("x86_64", glibc, musl=musl)
    assert caught.value.kind == "unsupported"


# ---------------------------------------------------------------------------------- the set key


ARM_TAGS = ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]


def test_the_set_key_is_the_one_existing_caches_are_named_by():
    # Changing the key's text renames every cached set: every board kind downloads again.
    assert wheel_set_key(PINNED_REQUIREMENTS, ARM_TAGS, "3.11") == "c879345e368317df"


def test_the_set_key_does_not_depend_on_how_the_arguments_are_passed():
    key = wheel_set_key(PINNED_REQUIREMENTS, ARM_TAGS, "3.11")
    assert wheel_set_key(list(PINNED_REQUIREMENTS), tuple(ARM_TAGS), "3.11") == key
    assert wheel_set_key(python_version="3.11", platforms=ARM_TAGS, requirements=PINNED_REQUIREMENTS) == key


@pytest.mark.parametrize("requirements, platforms, python_version", [
    (PINNED_REQUIREMENTS, ARM_TAGS, "3.12"),  # another Python
    (PINNED_REQUIREMENTS, ARM_TAGS[:1], "3.11"),  # fewer tags
    (PINNED_REQUIREMENTS, ARM_TAGS[::-1], "3.11"),  # the same tags in another preference order
    (PINNED_REQUIREMENTS, ["manylinux_2_17_armv7l", "manylinux2014_armv7l"], "3.11"),  # another arch
    (("pip", "numpy==1.26.4", "onnxruntime==1.18.0"), ARM_TAGS, "3.11"),  # another pin
    (NEWEST_REQUIREMENTS, ARM_TAGS, "3.11"),  # unpinned
])
def test_the_set_key_differs_when_what_pip_is_asked_differs(requirements, platforms, python_version):
    assert wheel_set_key(requirements, platforms, python_version) != wheel_set_key(PINNED_REQUIREMENTS, ARM_TAGS, "3.11")


def test_a_wheel_sets_digest_is_over_names_and_hashes_not_their_order(tmp_path):
    a, b = Wheel("pip-24.0-py3-none-any.whl", "1" * 64, 10), Wheel("numpy-1.26.4-cp311-x.whl", "2" * 64, 20)

    def digest(*found: Wheel) -> str:
        return WheelSet(tmp_path, (), (), "3.11", found, False).digest

    assert digest(a, b) == digest(b, a)
    assert digest(a, b) != digest(a, Wheel(b.filename, "3" * 64, 20))
    assert (b.name, b.version) == ("numpy", "1.26.4")


# ---------------------------------------------------------------------------------- resolve_wheels


def board_python(machine: str = "aarch64", glibc: tuple[int, int] | None = (2, 36), musl: bool = False,
                 version: tuple[int, int, int] = (3, 11, 2)) -> BoardPython:
    return BoardPython(
        setting="python3", executable="/usr/bin/python3", version=version, implementation="cpython",
        machine=machine, pointer_bits=64, glibc=glibc, musl=musl, has_venv=True, os_release={"ID": "debian"},
        venv_python_exists=False, record=None, python_marker=None, installed={},
    )


def wheel_files(tag: str, requirements: tuple[str, ...]) -> dict[str, bytes]:
    """File name -> fake contents for pip, numpy and onnxruntime at the requirements' versions."""
    versions = {name: version for name, _, version in (r.partition("==") for r in requirements)}
    return {
        f"pip-{versions['pip'] or '24.0'}-py3-none-any.whl": b"pip wheel",
        f"numpy-{versions['numpy'] or '2.0.1'}-cp311-cp311-{tag}.whl": b"numpy wheel bytes",
        f"onnxruntime-{versions['onnxruntime'] or '1.19.2'}-cp311-cp311-{tag}.whl": b"onnxruntime wheel bytes",
    }


def seed_set(cache_dir: Path, requirements: tuple[str, ...], platforms: list[str], python_version: str,
             files: dict[str, bytes]) -> list[Wheel]:
    """Cache files and a set record as a run before this one left them (written by hand: the format on disk)."""
    (cache_dir / "sets").mkdir(parents=True, exist_ok=True)
    found = []
    for filename, data in files.items():
        (cache_dir / filename).write_bytes(data)
        found.append(Wheel(filename, hashlib.sha256(data).hexdigest(), len(data)))
    record = {"requirements": list(requirements), "platforms": platforms, "python_version": python_version,
              "wheels": [{"filename": w.filename, "sha256": w.sha256, "size_bytes": w.size_bytes} for w in found],
              "created_at": "2026-01-01T00:00:00+00:00"}
    key = wheel_set_key(requirements, platforms, python_version)
    (cache_dir / "sets" / f"{key}.json").write_text(json.dumps(record))
    return found


class FakePip:
    """Stands in for `pip download`: records each call; writes `files` into the cache when it has any."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.calls: list[tuple] = []
        self.files = files

    def __call__(self, cache_dir, requirements, platforms, python_version):
        self.calls.append((cache_dir, tuple(requirements), tuple(platforms), python_version))
        if self.files is None:
            raise AssertionError("pip download was called; the cache should have answered")
        found = []
        for filename, data in self.files.items():
            (cache_dir / filename).write_bytes(data)
            found.append(Wheel(filename, hashlib.sha256(data).hexdigest(), len(data)))
        return found


@pytest.fixture
def pip(monkeypatch):
    """The controller runs numpy 1.26.4 and onnxruntime 1.17.0; pip download is a fake (no network)."""
    monkeypatch.setattr(wheels, "controller_versions", lambda runtime: dict(PINNED))
    fake = FakePip()
    monkeypatch.setattr(wheels, "_download", fake)
    return fake


@pytest.mark.parametrize("probe, folder", [
    (board_python("aarch64", (2, 36)), "aarch64-cp311"),
    (board_python("x86_64", None, musl=True, version=(3, 12, 1)), "x86_64-musl-cp312"),
])
def test_resolve_wheels_answers_from_a_cached_set_without_pip(tmp_path, pip, probe, folder):
    platforms = wheel_platforms(probe.arch, probe.glibc, probe.musl)
    python_version = f"{probe.version[0]}.{probe.version[1]}"
    seeded = seed_set(tmp_path / folder, PINNED_REQUIREMENTS, platforms, python_version,
                      wheel_files(platforms[0], PINNED_REQUIREMENTS))
    steps: list[str] = []

    found = resolve_wheels(probe, "onnxruntime", tmp_path, on_step=steps.append)

    assert pip.calls == [] and steps == []
    assert not found.downloaded and found.notes == ()
    assert found.cache_dir == tmp_path / folder
    assert found.wheels == tuple(seeded)
    assert found.requirements == PINNED_REQUIREMENTS and found.platforms == tuple(platforms)
    assert found.packages == {"pip": "24.0", "numpy": "1.26.4", "onnxruntime": "1.17.0"}
    assert found.pip_wheel().filename == "pip-24.0-py3-none-any.whl"
    assert found.path(found.pip_wheel()).read_bytes() == b"pip wheel"


def test_a_cached_wheel_that_changed_on_disk_is_not_trusted(tmp_path, pip):
    probe = board_python()
    platforms = wheel_platforms("aarch64", (2, 36))
    files = wheel_files(platforms[0], PINNED_REQUIREMENTS)
    seed_set(tmp_path / "aarch64-cp311", PINNED_REQUIREMENTS, platforms, "3.11", files)
    numpy_file = next(name for name in files if name.startswith("numpy-"))
    (tmp_path / "aarch64-cp311" / numpy_file).write_bytes(b"NUMPY WHEEL BYTES")  # same size, other bytes
    pip.files = files
    steps: list[str] = []

    found = resolve_wheels(probe, "onnxruntime", tmp_path, on_step=steps.append)

    assert pip.calls == [(tmp_path / "aarch64-cp311", PINNED_REQUIREMENTS, tuple(platforms), "3.11")]
    assert found.downloaded and len(steps) == 1 and steps[0].startswith("downloading wheels for aarch64 Python 3.11")
    assert (tmp_path / "aarch64-cp311" / numpy_file).read_bytes() == b"numpy wheel bytes"


def test_a_remembered_no_such_wheel_uses_the_newest_cached_set_and_says_so(tmp_path, pip):
    probe = board_python()
    platforms = wheel_platforms("aarch64", (2, 36))
    cache_dir = tmp_path / "aarch64-cp311"
    (cache_dir / "sets").mkdir(parents=True)
    pinned_key = wheel_set_key(PINNED_REQUIREMENTS, platforms, "3.11")
    (cache_dir / "sets" / f"{pinned_key}.json").write_text(json.dumps({
        "requirements": list(PINNED_REQUIREMENTS), "platforms": platforms, "python_version": "3.11",
        "no_wheel": "ERROR: No matching distribution found for onnxruntime==1.17.0",
    }))
    seeded = seed_set(cache_dir, NEWEST_REQUIREMENTS, platforms, "3.11", wheel_files(platforms[0], NEWEST_REQUIREMENTS))

    found = resolve_wheels(probe, "onnxruntime", tmp_path)

    assert pip.calls == []
    assert found.wheels == tuple(seeded) and found.requirements == NEWEST_REQUIREMENTS and not found.downloaded
    assert found.packages["onnxruntime"] == "1.19.2"
    (note,) = found.notes
    assert "no wheels of this controller's versions (numpy 1.26.4, onnxruntime 1.17.0)" in note


def test_refresh_asks_pip_even_when_the_set_is_cached_and_records_what_it_chose(tmp_path, pip):
    probe = board_python()
    platforms = wheel_platforms("aarch64", (2, 36))
    files = wheel_files(platforms[0], PINNED_REQUIREMENTS)
    seed_set(tmp_path / "aarch64-cp311", PINNED_REQUIREMENTS, platforms, "3.11", {})  # a record with no wheels
    pip.files = files

    found = resolve_wheels(probe, "onnxruntime", tmp_path, refresh=True)

    assert len(pip.calls) == 1 and found.downloaded
    record_path = tmp_path / "aarch64-cp311" / "sets" / f"{wheel_set_key(PINNED_REQUIREMENTS, platforms, '3.11')}.json"
    record = json.loads(record_path.read_text())
    assert [w["filename"] for w in record["wheels"]] == list(files)
    # and the next run, without refresh, answers from what was recorded
    pip.files = None
    again = resolve_wheels(probe, "onnxruntime", tmp_path)
    assert not again.downloaded and again.digest == found.digest and len(pip.calls) == 1


# ---------------------------------------------------------------------------------- --wheel (a user's own build)


def test_a_users_wheel_is_checked_before_any_board_and_named_by_content(tmp_path):
    from orchestrator.errors import BadInputError

    build = tmp_path / "onnxruntime_gpu-1.17.0-cp38-cp38-linux_aarch64.whl"
    build.write_bytes(b"a jetpack build")
    [wheel] = wheels.check_user_wheels([build])
    assert wheel.name == "onnxruntime-gpu" and wheel.provides("onnxruntime") and not wheel.provides("openvino")
    assert wheel.platform_tags == ["linux_aarch64"]
    assert wheel.requirement_key == f"{build.name}#sha256={hashlib.sha256(b'a jetpack build').hexdigest()}"
    with pytest.raises(BadInputError, match="no such file"):
        wheels.check_user_wheels([tmp_path / "missing-1.0-py3-none-any.whl"])
    other = tmp_path / "readme.txt"
    other.write_text("x")
    with pytest.raises(BadInputError, match="not a wheel file name"):
        wheels.check_user_wheels([other])


def test_a_users_build_of_the_runtime_replaces_the_index_one_and_brings_its_platform_tag(tmp_path, pip):
    build = tmp_path / "onnxruntime_gpu-1.17.0-cp311-cp311-linux_aarch64.whl"
    build.write_bytes(b"a jetpack build")
    user = wheels.check_user_wheels([build])
    pip.files = {"pip-24.0-py3-none-any.whl": b"pip", "numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.whl": b"np",
                 build.name: b"a jetpack build"}
    found = resolve_wheels(board_python(), "onnxruntime", tmp_path / "cache", user_wheels=user)
    [(_, requirements, platforms, _)] = pip.calls
    assert requirements == ("pip", "numpy==1.26.4", str(user[0].path))  # no index onnxruntime: the user's build
    assert platforms[-1] == "linux_aarch64"  # the build's own tag is acceptable for this board
    assert found.requirements == ("pip", "numpy==1.26.4", user[0].requirement_key)  # by content, not path
    assert found.packages["onnxruntime-gpu"] == "1.17.0"
    again = resolve_wheels(board_python(), "onnxruntime", tmp_path / "cache", user_wheels=user)
    assert len(pip.calls) == 1 and not again.downloaded and again.digest == found.digest  # cached by content
