"""Accelerator boards without the hardware: a Jetson's GPU, clocks and power mode read from a FAKE
sysfs/rootfs tree, and a FAKE provider list (tests/fake_providers: the real onnxruntime on the
CPU, claiming TensorRT/QNN) for what farm asks a provider and what the result says.

Nothing here runs on a GPU or NPU; the README says which parts were verified on real hardware.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.boards import Board
from orchestrator.cli import main
from orchestrator.cli.render import row_notes
from orchestrator.errors import ExitStatus
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store
from tests.conftest import REPO_ROOT
from tests.e2e.test_measurement import run_one

FAKE_PROVIDERS = REPO_ROOT / "tests" / "fake_providers"
FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--sample-interval", "0.05", "--no-report"]


def jetson_tree(root: Path, gpu_load_permille: int = 523) -> dict[str, str]:
    """A Jetson Orin's files: GPU load and devfreq clocks, EMC clock, nvpmodel mode, L4T release."""
    sysfs, rootfs = root / "sys", root / "rootfs"
    (sysfs / "devices/gpu.0").mkdir(parents=True)
    (sysfs / "devices/gpu.0/load").write_text(f"{gpu_load_permille}\n")
    gpu = sysfs / "class/devfreq/17000000.ga10b"
    gpu.mkdir(parents=True)
    for name, value in (("cur_freq", "918000000"), ("min_freq", "306000000"), ("max_freq", "1300500000"),
                        ("governor", "nvhost_podgov")):
        (gpu / name).write_text(value + "\n")
    emc = sysfs / "kernel/debug/bpmp/debug/clk/emc"
    emc.mkdir(parents=True)
    (emc / "rate").write_text("3199000000\n")
    tree = sysfs / "firmware/devicetree/base"
    tree.mkdir(parents=True)
    (tree / "model").write_text("NVIDIA Jetson AGX Orin Developer Kit\x00")
    (tree / "compatible").write_text("nvidia,p3737-0000+p3701-0000\x00nvidia,tegra234\x00")
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/nvpmodel.conf").write_text(
        "< POWER_MODEL ID=0 NAME=MAXN >\nCPU_ONLINE CORE_0 1\n< POWER_MODEL ID=1 NAME=MODE_15W >\n"
        "< POWER_MODEL ID=2 NAME=MODE_30W >\n< PM_CONFIG DEFAULT=2 >\n")
    (rootfs / "var/lib/nvpmodel").mkdir(parents=True)
    (rootfs / "var/lib/nvpmodel/status").write_text("pmode:0001 fmode:normal\n")
    (rootfs / "etc/nv_tegra_release").write_text("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n")
    return {"FARM_SYSFS_ROOT": str(sysfs), "FARM_ROOTFS": str(rootfs)}


def local_inventory(tmp_path: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"orin": {
        "transport": "local", "python": sys.executable, "workdir": str(tmp_path / "orin"), "env": env}}}}))
    return path


def test_jetson_gpu_clocks_and_power_mode_are_read_into_facts(tmp_path, capsys):
    inventory = local_inventory(tmp_path, jetson_tree(tmp_path))
    assert main(["inventory", "check", "-i", str(inventory), "--json"]) == ExitStatus.OK
    [check] = json.loads(capsys.readouterr().out)
    facts = check["facts"]
    assert facts["gpu"] == {"device": "17000000.ga10b", "load_pct": 52.3, "freq_hz": 918000000,
                            "min_freq_hz": 306000000, "max_freq_hz": 1300500000, "governor": "nvhost_podgov"}
    assert facts["emc_freq_hz"] == 3199000000
    assert facts["nvpmodel"] == {"id": 1, "name": "MODE_15W", "source": "status"}
    assert facts["soc"]["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert facts["soc"]["compatible"] == ["nvidia,p3737-0000+p3701-0000", "nvidia,tegra234"]
    assert facts["soc"]["l4t_release"].startswith("# R35 (release), REVISION: 4.1")


def test_nvpmodel_default_mode_when_no_status_was_written(tmp_path, capsys):
    env = jetson_tree(tmp_path)
    (Path(env["FARM_ROOTFS"]) / "var/lib/nvpmodel/status").unlink()
    assert main(["inventory", "check", "-i", str(local_inventory(tmp_path, env)), "--json"]) == ExitStatus.OK
    [check] = json.loads(capsys.readouterr().out)
    assert check["facts"]["nvpmodel"] == {"id": 2, "name": "MODE_30W", "source": "default"}


def test_the_gpu_load_is_sampled_while_measuring(db_url, tmp_path, digits_model):
    env = jetson_tree(tmp_path, gpu_load_permille=871)
    settings = BenchSettings(runs=10, min_seconds=0.3, warmup=1, threads=1, sample_interval_s=0.05)
    record = run_one(db_url, digits_model, settings, board=Board(name="orin", env=env))
    assert record["gpu_load_pct_mean"] == pytest.approx(87.1)
    _, samples = record["_series"]
    assert {s["gpu_freq_mhz"] for s in samples} == {918.0}


def test_tensorrt_engine_cache_options_pass_through_and_the_result_says_gpu(tmp_path, db_url, digits_model):
    env = {"PYTHONPATH": str(FAKE_PROVIDERS),
           "FARM_FAKE_PROVIDERS": "TensorrtExecutionProvider,CUDAExecutionProvider"}
    options = {"TensorRT": {"trt_engine_cache_enable": "True", "trt_engine_cache_path": "trt-engines",
                            "trt_fp16_enable": "True"}}
    args = ["bench", "-i", str(local_inventory(tmp_path, env)), *FAST, "--db", db_url, "-m", str(digits_model),
            "--providers", "TensorRT,CUDA,CPU", "--provider-options", json.dumps(options)]
    assert main(args) == ExitStatus.OK
    [result] = open_store(db_url).results("latest")
    export = result["details"]["export"]
    assert export["provider"] == "TensorrtExecutionProvider" and not export["provider_fallback"]
    assert export["accelerator"] == "gpu"
    assert result["details"]["provider_options"] == options["TensorRT"]  # what the session was given
    assert result["first_inference_ms"] is not None  # an engine build, kept apart from the latencies
    notes = row_notes(result)  # the terminal summary's notes column
    assert "gpu: Tensorrt" in notes and any(n.startswith("first inference") and "(engine build)" in n for n in notes)


def test_qnn_htp_is_a_named_provider_with_its_backend(tmp_path, db_url, digits_model):
    env = {"PYTHONPATH": str(FAKE_PROVIDERS), "FARM_FAKE_PROVIDERS": "QNNExecutionProvider"}
    base = ["bench", "-i", str(local_inventory(tmp_path, env)), *FAST, "--db", db_url, "-m", str(digits_model)]
    assert main([*base, "--providers", "QNN-HTP", "--provider-options", '{"QNN": {"htp_performance_mode": "burst"}}',
                 "--providers", "QNN-CPU"]) == ExitStatus.OK
    results = {r["details"]["export"]["sweep"]: r for r in open_store(db_url).results("latest")}
    htp, cpu = results["providers=QNN-HTP"], results["providers=QNN-CPU"]
    assert htp["details"]["export"]["provider"] == "QNNExecutionProvider"
    assert htp["details"]["provider_options"] == {"backend_path": "libQnnHtp.so", "htp_performance_mode": "burst"}
    assert htp["details"]["export"]["accelerator"] == "npu"
    assert cpu["details"]["provider_options"]["backend_path"] == "libQnnCpu.so"
    assert cpu["details"]["export"]["accelerator"] == "cpu"


def test_a_provider_the_board_lacks_is_a_fallback_and_strict_refuses_it(tmp_path, db_url, digits_model):
    env = {"PYTHONPATH": str(FAKE_PROVIDERS), "FARM_FAKE_PROVIDERS": "QNNExecutionProvider"}
    base = ["bench", "-i", str(local_inventory(tmp_path, env)), *FAST, "--db", db_url, "-m", str(digits_model),
            "--providers", "TensorRT"]
    assert main(base) == ExitStatus.OK
    [result] = open_store(db_url).export_records("latest")
    assert result["provider"] == "CPUExecutionProvider" and result["provider_fallback"] is True
    assert result["accelerator"] == "cpu"
    assert main([*base, "--strict"]) == ExitStatus.BOARD_FAILURE
    assert open_store(db_url).export_records("latest")[0]["error_kind"] == "missing-runtime"


def test_qnn_sdk_and_soc_facts(tmp_path):
    sdk = tmp_path / "qairt" / "2.26.0.240828"
    sdk.mkdir(parents=True)
    (sdk / "sdk.yaml").write_text("name: qairt\nversion: 2.26.0.240828\n")
    sysfs = tmp_path / "sys"
    (sysfs / "devices/soc0").mkdir(parents=True)
    for name, value in (("machine", "QRB5165"), ("family", "Snapdragon"), ("soc_id", "455")):
        (sysfs / "devices/soc0" / name).write_text(value + "\n")
    out = subprocess.run([sys.executable, str(REPO_ROOT / "agents" / "farm_agent.py"), "facts", "--quick"],
                         capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "QNN_SDK_ROOT": str(sdk), "FARM_SYSFS_ROOT": str(sysfs)}).stdout
    facts = json.loads(out.strip().splitlines()[-1])["facts"]
    assert facts["qnn"]["sdk_version"] == "2.26.0.240828" and facts["qnn"]["sdk_root"] == str(sdk)
    assert facts["soc"] == {"machine": "QRB5165", "family": "Snapdragon", "soc_id": "455"}
    assert facts["gpu"] is None and facts["nvpmodel"] is None and facts["power_sources"] == []
