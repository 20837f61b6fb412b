"""SSH runner against a real sshd that this test starts on 127.0.0.1 (temp host key, temp authorized_keys,
free port). The "device" python is this venv's python. Needs openssh-server (scripts/setup-test-system.sh)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeprune.errors import ConfigError, TargetUnreachable
from edgeprune.targets.base import RunSpec
from edgeprune.targets.ssh import parse_dest, run_ssh

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
    yield {"dest": f"{user}@127.0.0.1:{port}", "identity": str(d / "client_key"), "known_hosts": str(d / "known_hosts"),
           "port": port, "user": user, "perf_test_args": d / "perf_test_args"}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from edgeprune.profiling.testmodels import export_tiny_bert_onnx

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
    assert res["label"] == tiny_onnx.name          # reached the device unchanged, as one argument
    assert len(res["latencies_ms"]) == 5 and all(x > 0 for x in res["latencies_ms"])
    assert res["outputs"] == {"logits": [1, 2]} and res["inputs"]["input_ids"] == [1, 16]
    assert res["peak_rss_bytes"] > 0 and res["device"] == f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    assert "EDGEPRUNE_RESULT" in res["raw_stdout"]
    # the device's onnxruntime_perf_test ran too, with quoted arguments, and its output was parsed
    assert res["tool"]["tool"] == "onnxruntime_perf_test"
    assert res["tool"]["parsed"]["latency_ms"]["mean"] == pytest.approx(98.961997)
    args = sshd["perf_test_args"].read_text().split()
    assert args[:8] == ["-e", "cpu", "-m", "times", "-r", "5", "-x", "1"] and args[-1].endswith("/model.onnx")
    assert _pwned_files() == before, "a file name was interpreted by a shell"
    assert "ssh-ed25519" in Path(sshd["known_hosts"]).read_text()   # accept-new wrote the private known_hosts
    assert res["remote_dir"].startswith("/tmp/edgeprune.")
    assert not Path(res["remote_dir"]).exists(), "the remote work directory was not removed"


def test_cli_ssh_writes_measured_device_result(sshd, tiny_onnx, tmp_path):
    out = tmp_path / "prof"
    cmd = [sys.executable, "-m", "edgeprune", "profile", str(tiny_onnx), "--ssh", sshd["dest"], "--identity",
           sshd["identity"], "--known-hosts", sshd["known_hosts"], "--remote-python", sys.executable,
           "--target", "rpi4", "--seq-len", "16", "--warmup", "1", "--runs", "3", "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rep = json.loads((out / "profile.json").read_text())
    measured = [r for r in rep["results"] if r["kind"] == "measured"]
    assert len(measured) == 1 and measured[0]["target"] == "rpi4" and measured[0]["runner"] == "ssh"
    assert set(measured[0]["latency_ms"]) == {"mean", "p50", "p90", "p99", "std"}
    assert {r["target"] for r in rep["results"] if r["kind"] == "predicted"} >= {"host", "rpi4", "rpi5", "phone"}
    assert (out / "profile.md").is_file() and (out / "profile.png").is_file()


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
