"""SSH runner against a real sshd that this test starts on 127.0.0.1 (temp host key, temp authorized_keys,
free port). The "device" python is this venv's python. Needs openssh-server (scripts/setup-test-system.sh)."""
from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeprune.errors import ConfigError, TargetUnreachable
from edgeprune.targets.base import RunSpec
from edgeprune.targets.ssh import SSHConfig, SSHRunner, parse_dest


def run_ssh(spec, dest, **config):
    """The one measurement of the SSH runner (every runner returns a list of Measurement)."""
    (m,) = SSHRunner(SSHConfig(dest, **config)).measure(spec)
    return m

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        pytest.fail("openssh-server is not installed: run `bash scripts/setup-test-system.sh` as root")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    # the "device" has onnxruntime_perf_test on its PATH: a stand-in that prints the documented output
    tools = d / "device-bin"
    tools.mkdir()
    fixture = Path(__file__).parent / "fixtures" / "perf_test_current.txt"
    (tools / "onnxruntime_perf_test").write_text(f"#!/bin/sh\necho \"$@\" > {d / 'perf_test_args'}\ncat {fixture}\n")
    (tools / "onnxruntime_perf_test").chmod(0o755)
    cfg = d / "sshd_config"
    cfg.write_text("\n".join([
        "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {d / 'host_key'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", f"PidFile {d / 'sshd.pid'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no", "AllowTcpForwarding no",
        "X11Forwarding no", "PrintMotd no", "LogLevel ERROR", "Subsystem sftp internal-sftp",
        f"SetEnv PATH={tools}:/usr/local/bin:/usr/bin:/bin", ""]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)
    check = subprocess.run([SSHD, "-t", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"sshd did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    # the user pinned this device's host key (as `ssh` once, after checking the fingerprint, would)
    pinned = f"[127.0.0.1]:{port} {' '.join((d / 'host_key.pub').read_text().split()[:2])}\n"
    (d / "known_hosts").write_text(pinned)
    yield {"dest": f"{user}@127.0.0.1:{port}", "identity": str(d / "client_key"), "known_hosts": str(d / "known_hosts"),
           "port": port, "user": user, "perf_test_args": d / "perf_test_args", "pinned": pinned}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from tests.support.testmodels import export_tiny_bert_onnx

    d = tmp_path_factory.mktemp("ssh_art")
    # a hostile file name: spaces and a command substitution that must never run anywhere
    return export_tiny_bert_onnx(d / "my model $(touch pwned) ;x.onnx", d / "ckpt", seq_len=16)


def _pwned_files() -> list[Path]:
    places = [Path.home(), Path("/tmp"), Path.cwd()]
    return [p / "pwned" for p in places if (p / "pwned").exists()]


def test_profile_over_loopback_ssh_quotes_everything(sshd, tiny_onnx):
    before = _pwned_files()
    spec = RunSpec(tiny_onnx, seq_len=16, warmup=1, runs=5, timeout_s=120)
    res = run_ssh(spec, sshd["dest"], identity=sshd["identity"], remote_python=sys.executable,
                  known_hosts=sshd["known_hosts"])
    assert res.details["label"] == tiny_onnx.name          # reached the device unchanged, as one argument
    assert res.runner == "ssh" and res.kind == "measured" and res.engine == "ort"
    assert len(res.samples_ms) == 5 and all(x > 0 for x in res.samples_ms)
    assert res.result["outputs"] == {"logits": [1, 2]} and res.inputs["input_ids"] == [1, 16]
    assert res.peak_memory_bytes > 0 and res.device["dest"] == f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    assert "EDGEPRUNE_RESULT" in res.raw["ssh"]
    # the device's onnxruntime_perf_test ran too, with quoted arguments, and its output was parsed
    assert res.details["tool"]["tool"] == "onnxruntime_perf_test"
    assert res.details["tool"]["parsed"]["latency_ms"]["mean"] == pytest.approx(98.961997)
    args = sshd["perf_test_args"].read_text().split()
    assert args[:8] == ["-e", "cpu", "-m", "times", "-r", "5", "-x", "1"] and args[-1].endswith("/model.onnx")
    assert _pwned_files() == before, "a file name was interpreted by a shell"
    assert Path(sshd["known_hosts"]).read_text() == sshd["pinned"]   # checked against the pinned key, unchanged
    assert res.device["host_key"].endswith("unknown keys refused")
    assert res.result["remote_dir"].startswith("/tmp/edgeprune.")
    assert not Path(res.result["remote_dir"]).exists(), "the remote work directory was not removed"


def test_cli_ssh_writes_measured_device_result(sshd, tiny_onnx, tmp_path):
    out = tmp_path / "prof"
    # the loopback "device" is this x86_64 machine: a user target describing it (a copy of host.toml)
    tdir = tmp_path / "targets"
    tdir.mkdir()
    host_toml = (Path(__file__).parents[1] / "targets" / "host.toml").read_text()
    (tdir / "loopback.toml").write_text(host_toml.replace('name = "host"', 'name = "loopback"'))
    base = [sys.executable, "-m", "edgeprune", "profile", str(tiny_onnx), "--ssh", sshd["dest"], "--identity",
            sshd["identity"], "--known-hosts", sshd["known_hosts"], "--remote-python", sys.executable,
            "--seq-len", "16", "--warmup", "1", "--runs", "3", "--out", str(out), "--targets-dir", str(tdir)]
    if platform.machine() in ("x86_64", "AMD64"):
        # issue 15: an x86 machine over ssh is no rpi4; its time is never recorded as one
        p = subprocess.run(base + ["--target", "rpi4"], capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and "target 'rpi4' is aarch64" in p.stderr and "Traceback" not in p.stderr
        assert not (out / "profile.json").exists()
    p = subprocess.run(base + ["--target", "loopback"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rep = json.loads((out / "profile.json").read_text())
    measured = [r for r in rep["results"] if r["kind"] == "measured"]
    assert len(measured) == 1 and measured[0]["target"] == "loopback" and measured[0]["runner"] == "ssh"
    assert measured[0]["device"]["machine"] == platform.machine() and measured[0]["inputs"]["input_ids"] == [1, 16]
    assert "unknown keys refused" in measured[0]["device"]["host_key"]
    assert "host key: known_hosts file" in (out / "profile.md").read_text()
    assert set(measured[0]["latency_ms"]) == {"mean", "p10", "p50", "p90", "p99", "std"}
    assert {r["target"] for r in rep["results"] if r["kind"] == "predicted"} >= {"host", "loopback", "rpi4", "phone"}
    assert (out / "profile.md").is_file() and (out / "profile.png").is_file()


def test_unknown_host_key_needs_the_explicit_flag(sshd, tiny_onnx, tmp_path):
    spec = RunSpec(tiny_onnx, seq_len=16, warmup=0, runs=1, timeout_s=120)
    fresh = tmp_path / "known_hosts"          # a known_hosts that has never seen this device
    fresh.write_text("")
    with pytest.raises(TargetUnreachable, match="host key not trusted.*--accept-new-host-key"):
        run_ssh(spec, sshd["dest"], identity=sshd["identity"], remote_python=sys.executable, known_hosts=str(fresh),
                use_tool=False)
    assert fresh.read_text() == ""
    res = run_ssh(spec, sshd["dest"], identity=sshd["identity"], remote_python=sys.executable, known_hosts=str(fresh),
                  use_tool=False, accept_new_host_key=True)
    assert "a first-seen key accepted and pinned (--accept-new-host-key)" in res.device["host_key"]
    assert fresh.read_text().split()[1:3] == sshd["pinned"].split()[1:3]   # pinned now


def test_changed_host_key_is_refused_even_with_accept_new(sshd, tiny_onnx, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kh = tmp_path / "known_hosts"               # the user pinned another key for this host:port
    kh.write_text(f"[127.0.0.1]:{sshd['port']} {' '.join((tmp_path / 'other_key.pub').read_text().split()[:2])}\n")
    before = kh.read_text()
    spec = RunSpec(tiny_onnx, seq_len=16, warmup=0, runs=1, timeout_s=120)
    for accept in (False, True):
        with pytest.raises(TargetUnreachable, match="host key"):
            run_ssh(spec, sshd["dest"], identity=sshd["identity"], remote_python=sys.executable, known_hosts=str(kh),
                    use_tool=False, accept_new_host_key=accept)
    assert kh.read_text() == before


def test_ssh_uses_the_users_own_configuration_by_default():
    from edgeprune.targets.ssh import SSHSession

    opts = " ".join(SSHSession(parse_dest("pi@pi.local")).opts)
    assert "UserKnownHostsFile" not in opts and "GlobalKnownHostsFile" not in opts
    assert "StrictHostKeyChecking" not in opts      # ssh's own (default: ask, i.e. refuse in BatchMode)
    assert "StrictHostKeyChecking=accept-new" in " ".join(SSHSession(parse_dest("pi@pi.local"),
                                                                     accept_new_host_key=True).opts)


def test_unreachable_host_is_one_clear_error(sshd, tiny_onnx, tmp_path):
    port = _free_port()  # nothing listens here
    spec = RunSpec(tiny_onnx, seq_len=16, runs=1, timeout_s=30)
    with pytest.raises(TargetUnreachable, match="unreachable"):
        run_ssh(spec, f"nobody@127.0.0.1:{port}", identity=sshd["identity"], known_hosts=sshd["known_hosts"])
    cmd = [sys.executable, "-m", "edgeprune", "profile", str(tiny_onnx), "--ssh", f"nobody@127.0.0.1:{port}",
           "--identity", sshd["identity"], "--known-hosts", sshd["known_hosts"], "--out", str(tmp_path / "x")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("error: ssh nobody@127.0.0.1")
    assert "Traceback" not in p.stderr and not (tmp_path / "x" / "profile.json").exists()


def test_remote_timeout_is_one_clear_error(sshd, tiny_onnx, tmp_path):
    slow = tmp_path / "slow python"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    spec = RunSpec(tiny_onnx, seq_len=16, runs=1, timeout_s=4)
    with pytest.raises(TargetUnreachable, match="timed out after 4 s"):
        run_ssh(spec, sshd["dest"], identity=sshd["identity"], remote_python=str(slow),
                known_hosts=sshd["known_hosts"])


def test_remote_runtime_failure_names_the_python(sshd, tiny_onnx):
    spec = RunSpec(tiny_onnx, seq_len=16, runs=1, timeout_s=60)
    with pytest.raises(TargetUnreachable, match="--remote-python"):
        run_ssh(spec, sshd["dest"], identity=sshd["identity"], remote_python="/bin/false",
                known_hosts=sshd["known_hosts"])


@pytest.mark.parametrize("bad", ["-oProxyCommand=touch pwned", "pi@host name", "pi@host:99999", "pi@$(id):22", ""])
def test_bad_destinations_are_refused(bad):
    with pytest.raises(ConfigError):
        parse_dest(bad)


def test_destination_parsing():
    d = parse_dest("pi@raspberrypi.local:2222")
    assert (d.user, d.host, d.port) == ("pi", "raspberrypi.local", 2222)
    assert parse_dest("10.0.0.7").port == 22
