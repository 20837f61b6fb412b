"""Targets as data: built-in TOMLs, user TOMLs, validation errors, the runner registry."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.errors import ConfigError
from edgeprune.targets import BUILTIN_DIR, get_runner, get_target, load_targets, parse_target

GOOD = """
name = "{name}"
description = "test board"
[cpu]
model = "Cortex-A53"
cores = 4
clock_ghz = 1.2
fp32_flops_per_cycle = 4
fp16_flops_per_cycle = 4
int8_ops_per_cycle = 8
isa = ["fp", "asimd"]
efficiency = 0.5
[memory]
bandwidth_gbs = 2.0
[qemu]
cpu = "cortex-a53"
cpuinfo_part = "0xd03"
cpuinfo_features = "fp asimd"
"""


def test_builtin_targets_and_hand_computed_peaks():
    t = load_targets()
    assert {"host", "rpi4", "rpi5", "phone"} <= set(t)
    # Pi 4: 1 fmla.4s/cycle = 8 FLOP/cycle/core x 1.5 GHz = 12 GFLOP/s per core, 48 on 4 cores
    assert t["rpi4"].peak_gflops("fp32", 1) == pytest.approx(12.0)
    assert t["rpi4"].peak_gflops("fp32") == pytest.approx(48.0)
    assert t["rpi4"].peak_gflops("fp32", 16) == pytest.approx(48.0)  # capped at the core count
    # Pi 5: 16 FLOP/cycle x 2.4 GHz = 38.4 per core; int8 64 ops/cycle x 2.4 = 153.6
    assert t["rpi5"].peak_gflops("fp32", 1) == pytest.approx(38.4)
    assert t["rpi5"].peak_gflops("int8", 1) == pytest.approx(153.6)
    assert t["rpi4"].qemu_cpu == "cortex-a72" and t["rpi5"].qemu_cpu == "cortex-a76"
    assert t["phone"].gpu is not None and t["phone"].gpu.peak_gflops("fp16") == pytest.approx(1797.0)
    assert t["phone"].big_core_mask == "f0"
    assert "lse" not in t["rpi4"].isa and "atomics" not in t["rpi4"].isa
    for name in ("rpi4", "rpi5", "phone"):
        assert t[name].sources, f"{name} must cite its sources"


def test_cpuinfo_for_emulation():
    text = get_target("rpi4").cpuinfo_text(2)
    assert text.count("processor\t:") == 2
    assert "CPU part\t: 0xd08" in text and "Features\t: fp asimd evtstrm crc32 cpuid" in text


def test_user_target_dir_and_env(tmp_path, monkeypatch):
    (tmp_path / "pi3.toml").write_text(GOOD.format(name="pi3"))
    assert load_targets(tmp_path)["pi3"].peak_gflops("fp32", 2) == pytest.approx(4 * 1.2 * 2)
    monkeypatch.setenv("EDGEPRUNE_TARGETS", str(tmp_path))
    assert "pi3" in load_targets()


@pytest.mark.parametrize("mutate, needle", [
    (lambda s: s.replace("cores = 4", "cores = -4"), "cpu.cores must be a positive integer"),
    (lambda s: s.replace("cores = 4", 'cores = "four"'), "cpu.cores must be a positive integer"),
    (lambda s: s.replace("[memory]\nbandwidth_gbs = 2.0", ""), "missing table [memory]"),
    (lambda s: s.replace("efficiency = 0.5", "efficiency = 1.5"), "cpu.efficiency must be a positive number <= 1"),
    (lambda s: s.replace('cpu = "cortex-a53"', 'cpu = "pentium"'), "not a qemu-aarch64 CPU model"),
    (lambda s: s.replace("clock_ghz = 1.2", "clock_ghz = 1.2\nclok = 3"), "unknown key(s) ['clok'] in [cpu]"),
    (lambda s: s.replace('name = "pi3"', 'name = "other"'), "must match the file name"),
    (lambda s: s.replace("[cpu]", "[cpu"), "not valid TOML"),
    (lambda s: s.replace('fp32_flops_per_cycle = 4', ''), "missing cpu.fp32_flops_per_cycle"),
])
def test_bad_target_files_name_file_and_key(tmp_path, mutate, needle):
    p = tmp_path / "pi3.toml"
    p.write_text(mutate(GOOD.format(name="pi3")))
    with pytest.raises(ConfigError) as e:
        parse_target(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_cli_lists_targets_and_rejects_bad_file_in_one_line(tmp_path):
    (tmp_path / "pi3.toml").write_text(GOOD.format(name="pi3"))
    exe = [sys.executable, "-m", "edgeprune", "targets", "--targets-dir", str(tmp_path), "--json"]
    ok = subprocess.run(exe, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert '"pi3"' in ok.stdout and '"rpi4"' in ok.stdout
    (tmp_path / "bad.toml").write_text(GOOD.format(name="bad").replace("cores = 4", "cores = 0"))
    bad = subprocess.run(exe, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "bad.toml" in bad.stderr and "cpu.cores" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_runner_registry():
    for name in ("host", "ssh", "adb", "emulate"):
        runner = get_runner(name)
        assert runner.name == name and callable(runner.measure) and callable(runner.describe)
    with pytest.raises(ConfigError, match="valid: host, ssh, adb, emulate"):
        get_runner("telnet")
    with pytest.raises(ConfigError, match="unknown target 'pi9'"):
        get_target("pi9")


def test_builtin_tomls_are_package_data():
    assert sorted(p.name for p in Path(BUILTIN_DIR).glob("*.toml")) == ["host.toml", "phone.toml", "rpi4.toml",
                                                                       "rpi5.toml"]


def test_target_architectures():
    """What profile checks an --ssh device against: rpi4/rpi5/phone are aarch64, host's TOML x86_64."""
    from edgeprune.targets import same_arch

    t = load_targets()
    assert {n: t[n].arch for n in ("rpi4", "rpi5", "phone", "host")} == \
        {"rpi4": "aarch64", "rpi5": "aarch64", "phone": "aarch64", "host": "x86_64"}
    assert same_arch("aarch64", "aarch64") and same_arch("arm64", "aarch64")
    assert not same_arch("x86_64", "aarch64") and not same_arch(None, "aarch64")
