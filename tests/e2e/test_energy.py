"""Power and energy per inference, measured by the real agent on the local board from a fake sysfs
tree (FARM_SYSFS_ROOT): fake rails at known powers must give known energies.

Every figure here comes from a FAKE rail: the files say what power the "board" draws. What is
tested is the agent's reading, windowing and arithmetic, not any real board's power. A RAPL-style
counter is advanced by a thread at a constant rate (a simulated meter, the only moving part),
so the agent's mean power is its own integration over the measured phase.
"""
from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from orchestrator.boards import Board
from orchestrator.report import write_report
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store
from tests.e2e.test_measurement import run_one

SETTINGS = BenchSettings(runs=20, min_seconds=1.5, warmup=2, threads=1, sample_interval_s=0.05, idle_power_s=0.3)


def hwmon(root: Path, chip: str, index: int = 0) -> Path:
    folder = root / "class/hwmon" / f"hwmon{index}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "name").write_text(chip + "\n")
    return folder


def test_a_constant_rail_gives_energy_per_inference_of_power_times_latency(db_url, tmp_path, yolo_model):
    sysfs = tmp_path / "sysfs"
    (hwmon(sysfs, "ina219") / "power1_input").write_text("3000000\n")  # 3 W, in microwatts
    record = run_one(db_url, yolo_model, SETTINGS, board=Board(name="rail", env={"FARM_SYSFS_ROOT": str(sysfs)}))
    assert record["power_sources"] == "hwmon:ina219/power1"
    assert record["power_w_mean"] == pytest.approx(3.0) and record["power_w_idle"] == pytest.approx(3.0)
    expected = 3.0 * record["latency_ms_mean"]  # W × ms = mJ
    assert record["energy_mj_per_inference"] == pytest.approx(expected, rel=0.05)
    assert record["energy_mj_per_inference_above_idle"] == pytest.approx(0.0, abs=1e-9)
    assert record["energy_mj_per_image"] == pytest.approx(record["energy_mj_per_inference"])  # batch 1
    _, samples = record["_series"]
    assert all(s["power_w"] == pytest.approx(3.0) for s in samples)


class EnergyCounter:
    """A fake RAPL zone whose energy_uj grows at `watts` (rewritten every few ms, atomically)."""

    def __init__(self, folder: Path, watts: float) -> None:
        self.folder, self.watts = folder, watts
        folder.mkdir(parents=True)
        (folder / "name").write_text("package-0\n")
        (folder / "max_energy_range_uj").write_text("262143328850\n")
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.write()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def write(self) -> None:
        value = int(1_000_000 + self.watts * (time.monotonic() - self.started) * 1e6)
        tmp = self.folder / ".energy_uj.tmp"
        tmp.write_text(f"{value}\n")
        os.replace(tmp, self.folder / "energy_uj")

    def run(self) -> None:
        deadline = self.started + 120  # bounded, whatever happens
        while not self.stop.wait(0.002) and time.monotonic() < deadline:
            self.write()


def test_an_energy_counter_is_integrated_over_the_measured_phase(db_url, tmp_path, yolo_model):
    sysfs = tmp_path / "sysfs"
    counter = EnergyCounter(sysfs / "class/powercap/intel-rapl:0", watts=4.0)
    counter.thread.start()
    try:
        record = run_one(db_url, yolo_model, SETTINGS, board=Board(name="x86", env={"FARM_SYSFS_ROOT": str(sysfs)}))
    finally:
        counter.stop.set()
        counter.thread.join(timeout=5)
    assert record["power_sources"] == "rapl:package-0"
    assert record["power_w_mean"] == pytest.approx(4.0, rel=0.05)
    assert record["power_w_idle"] == pytest.approx(4.0, rel=0.05)
    assert record["energy_mj_per_inference"] == pytest.approx(4.0 * record["latency_ms_mean"], rel=0.05)


def test_a_jetson_board_rail_is_the_total_and_the_idle_baseline_is_subtracted(db_url, tmp_path, yolo_model):
    sysfs = tmp_path / "sysfs"
    folder = hwmon(sysfs, "ina3221")

    def rails(vdd_in_ma: int) -> None:  # INA3221 channels: bus voltage (mV) and current (mA)
        for n, label, mv, ma in ((1, "VDD_IN", 5000, vdd_in_ma), (2, "VDD_CPU_GPU_CV", 5000, 150),
                                 (3, "VDD_SOC", 5000, 100)):
            (folder / f"in{n}_label").write_text(label + "\n")
            (folder / f"in{n}_input").write_text(f"{mv}\n")
            (folder / f"curr{n}_input").write_text(f"{ma}\n")

    rails(400)  # 2 W into the module while idle

    def load(kind: str, info: dict) -> None:
        if kind == "cell_phase" and info.get("phase") == "measure":
            rails(1000)  # 5 W while inferring

    record = run_one(db_url, yolo_model, SETTINGS, board=Board(name="orin", env={"FARM_SYSFS_ROOT": str(sysfs)}),
                     on_event=load)
    assert record["power_sources"] == "hwmon:ina3221/VDD_IN, hwmon:ina3221/VDD_CPU_GPU_CV, hwmon:ina3221/VDD_SOC"
    assert record["power_w_idle"] == pytest.approx(2.0)  # VDD_IN alone: its sub-rails are not added
    assert record["power_w_mean"] == pytest.approx(5.0, rel=0.05)
    latency = record["latency_ms_mean"]
    assert record["energy_mj_per_inference"] == pytest.approx(5.0 * latency, rel=0.05)
    assert record["energy_mj_per_inference_above_idle"] == pytest.approx(3.0 * latency, rel=0.08)


PMIC_OUTPUT = """\
     3V7_WL_SW_A current(0)=0.10000000A
     3V3_SYS_A current(1)=0.20000000A
     VDD_CORE_A current(7)=1.00000000A
     3V7_WL_SW_V volt(8)=3.70000000V
     3V3_SYS_V volt(9)=3.30000000V
     VDD_CORE_V volt(15)=0.80000000V
     EXT5V_V volt(24)=5.10000000V
"""


def test_a_raspberry_pi_pmic_is_read_through_vcgencmd(db_url, tmp_path, digits_model):
    vcgencmd = tmp_path / "vcgencmd"
    vcgencmd.write_text("#!/bin/sh\ncase \"$1\" in\n  pmic_read_adc) cat <<'EOF'\n" + PMIC_OUTPUT
                        + "EOF\n  ;;\n  get_throttled) echo throttled=0x0 ;;\nesac\n")
    vcgencmd.chmod(vcgencmd.stat().st_mode | stat.S_IXUSR)
    board = Board(name="pi5", env={"FARM_VCGENCMD": str(vcgencmd), "FARM_SYSFS_ROOT": str(tmp_path / "empty")})
    settings = SETTINGS.replace(min_seconds=0.5)
    record = run_one(db_url, digits_model, settings, board=board)
    watts = 0.1 * 3.7 + 0.2 * 3.3 + 1.0 * 0.8  # rails with a current and a voltage; EXT5V has no current
    assert record["power_sources"] == "vcgencmd:pmic_read_adc"
    assert record["power_w_mean"] == pytest.approx(watts)
    assert record["energy_mj_per_inference"] == pytest.approx(watts * record["latency_ms_mean"])


def test_no_power_sensor_means_no_energy_and_no_idle_wait(db_url, tmp_path, digits_model):
    sysfs = tmp_path / "sysfs"
    sysfs.mkdir()
    started = time.monotonic()
    record = run_one(db_url, digits_model, SETTINGS.replace(min_seconds=0.1, idle_power_s=30.0),
                     board=Board(name="plain", env={"FARM_SYSFS_ROOT": str(sysfs)}))
    assert time.monotonic() - started < 25  # no sensor: the 30 s idle window is never waited for
    assert record["power_sources"] is None and record["power_w_mean"] is None
    assert record["energy_mj_per_inference"] is None and record["energy_mj_per_inference_above_idle"] is None


def test_energy_shows_in_the_report(db_url, tmp_path, yolo_model):
    sysfs = tmp_path / "sysfs"
    (hwmon(sysfs, "ina219") / "power1_input").write_text("3000000\n")
    board = Board(name="rail", env={"FARM_SYSFS_ROOT": str(sysfs)})
    record = run_one(db_url, yolo_model, SETTINGS.replace(min_seconds=0.2), board=board)
    store = open_store(db_url)
    html = write_report(store, record["run_id"], tmp_path / "r.html").read_text()
    assert "mJ/inf" in html and "energy per inference" in html


def test_compare_shows_the_energy_change_and_judges_it(db_url, tmp_path, yolo_model, capsys):
    from orchestrator.cli import main

    sysfs = tmp_path / "sysfs"
    rail = hwmon(sysfs, "ina219") / "power1_input"
    board = Board(name="rail", env={"FARM_SYSFS_ROOT": str(sysfs)})
    settings = SETTINGS.replace(min_seconds=0.2)
    rail.write_text("3000000\n")
    base = run_one(db_url, yolo_model, settings, board=board)
    rail.write_text("6000000\n")  # the same model drawing twice the power
    new = run_one(db_url, yolo_model, settings, board=board)
    assert main(["compare", base["run_id"], new["run_id"], "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "Δ energy" in out and "energy ≥ 5%" in out
    [row] = [line for line in out.splitlines() if line.startswith("rail ")]  # the table row, not the reason
    change_pct = 100.0 * (new["energy_mj_per_inference"] / base["energy_mj_per_inference"] - 1.0)
    assert f"{change_pct:+.1f}%" in row and "regressed" in row


def test_a_jetson_agx_orin_without_a_module_input_rail_sums_its_rails(tmp_path, monkeypatch):
    """AGX Orin's INA3221 channels are VDD_GPU_SOC, VDD_CPU_CV and VIN_SYS_5V0: none is the
    module's input, so the board's power is their sum (VIN_SYS_5V0 alone would be a third of it)."""
    from agents import farm_agent

    folder = hwmon(tmp_path, "ina3221")
    for n, label in ((1, "VDD_GPU_SOC"), (2, "VDD_CPU_CV"), (3, "VIN_SYS_5V0")):
        (folder / f"in{n}_label").write_text(label + "\n")
        (folder / f"in{n}_input").write_text("5000\n")  # mV
        (folder / f"curr{n}_input").write_text("200\n")  # mA: 1 W each
    monkeypatch.setattr(farm_agent, "SYSFS_ROOT", str(tmp_path))
    monkeypatch.setattr(farm_agent, "vcgencmd_path", lambda: None)
    board_w, by_source = farm_agent.PowerMeter(farm_agent.power_sources()).read()
    assert len(by_source) == 3 and board_w == pytest.approx(3.0)
