"""SSH runner: copy the artifact and remote_runner.py to a device, run it there, bring the numbers back.

Plain ``ssh``/``scp`` subprocesses (no shell on this side) with BatchMode and ConnectTimeout. Host keys are
checked the way the user's ssh checks them (~/.ssh/config, ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts);
``--known-hosts FILE`` names another known_hosts file. A host key seen for the first time is accepted only
with ``--accept-new-host-key`` (StrictHostKeyChecking=accept-new: a *changed* key is still refused), and the
result says which policy was used. Every word of the remote command
is ``shlex.quote``d; the artifact travels under a fixed name in a fresh ``mktemp -d`` directory.
"""
from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgeprune.errors import ConfigError, TargetUnreachable

from . import Target, register_runner, same_arch
from .base import RUNNER_SCRIPT, OnProgress, RunSpec, last_line, parse_runner_output, stream
from .measurement import Measurement, runner_measurement
from .tools import DeviceTool

_DEST_RE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
                      r"(?::(?P<port>\d{1,5}))?$")
_REMOTE_DIR_RE = re.compile(r"^/[A-Za-z0-9._/-]+$")


@dataclass(frozen=True)
class SSHDest:
    user: str | None
    host: str
    port: int = 22

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return f"{self.login}:{self.port}"


def parse_dest(text: str) -> SSHDest:
    """``user@host[:port]``; anything else (spaces, options, shell characters) is refused."""
    m = _DEST_RE.match(text or "")
    if not m or m.group("host").startswith("-"):
        raise ConfigError(f"--ssh {text!r}: expected user@host[:port], e.g. pi@raspberrypi.local:22")
    port = int(m.group("port") or 22)
    if not 0 < port < 65536:
        raise ConfigError(f"--ssh {text!r}: port {port} is out of range 1-65535")
    return SSHDest(m.group("user"), m.group("host"), port)


_HOST_KEY_RE = re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|"
                          r"No \S+ host key is known for|Host key for \S+ has changed")


def host_key_policy(known_hosts: str | None, accept_new: bool) -> str:
    """How the host key was checked, as the report states it."""
    where = f"known_hosts file {known_hosts}" if known_hosts else "ssh's own configuration and known_hosts"
    return where + ("; a first-seen key accepted and pinned (--accept-new-host-key)" if accept_new else
                    "; unknown keys refused")


def host_key_refusal(dest: SSHDest, stderr: str, policy: str) -> str:
    """One line: the device's host key is not trusted, and what to do."""
    if re.search(r"CHANGED|has changed", stderr or ""):
        return (f"ssh {dest}: the host key has CHANGED from the one pinned ({policy}); refused. If the device was "
                f"re-installed, check its new key and remove the old one with `ssh-keygen -R {dest.host}`")
    return (f"ssh {dest}: host key not trusted ({policy}); connect once with `ssh -p {dest.port} {dest.login}` and "
            f"check the fingerprint, or pass --accept-new-host-key to accept a first-seen key")


class SSHSession:
    """ssh/scp argument lists for one destination; each call gets a timeout and a clear error."""

    def __init__(self, dest: SSHDest, identity: str | None = None, known_hosts: str | None = None,
                 connect_timeout: int = 10, accept_new_host_key: bool = False):
        if identity and not Path(identity).is_file():
            raise ConfigError(f"--identity {identity}: no such file")
        self.dest = dest
        self.host_key_policy = host_key_policy(known_hosts, accept_new_host_key)
        self.opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(connect_timeout)}",
                     "-o", "LogLevel=ERROR", "-o", "ServerAliveInterval=15"]
        if known_hosts:
            kh = Path(known_hosts)
            if not kh.parent.is_dir():
                raise ConfigError(f"--known-hosts {kh}: folder {kh.parent} does not exist")
            self.opts += ["-o", f"UserKnownHostsFile={kh}"]
        if accept_new_host_key:
            self.opts += ["-o", "StrictHostKeyChecking=accept-new"]
        if identity:
            self.opts += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]

    def _run(self, cmd: list[str], timeout: float, what: str,
             on_progress: OnProgress | None = None) -> subprocess.CompletedProcess[str]:
        try:
            if on_progress is not None:
                proc = stream(cmd, timeout, on_progress)
            else:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TargetUnreachable(f"ssh {self.dest}: {what} timed out after {timeout:.0f} s") from None
        except FileNotFoundError:
            raise TargetUnreachable(f"{cmd[0]} not found; install openssh-client") from None
        if proc.returncode == 255:  # ssh's own failure: connection, auth, host key
            if _HOST_KEY_RE.search(proc.stderr or ""):
                raise TargetUnreachable(host_key_refusal(self.dest, proc.stderr, self.host_key_policy))
            raise TargetUnreachable(f"ssh {self.dest} unreachable: {last_line(proc.stderr)}")
        return proc

    def run(self, words: list[str], timeout: float, what: str = "command",
            on_progress: OnProgress | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``words`` remotely; each word is quoted, so the remote shell sees them literally."""
        remote = " ".join(shlex.quote(w) for w in words)
        return self.run_script(remote, timeout, what, on_progress)

    def run_script(self, remote: str, timeout: float, what: str,
                   on_progress: OnProgress | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["ssh", *self.opts, "-p", str(self.dest.port), self.dest.login, "--", remote]
        return self._run(cmd, timeout, what, on_progress)

    def put(self, local: Path, remote_path: str, timeout: float) -> None:
        host = self.dest.host
        cmd = ["scp", "-q", *self.opts, "-P", str(self.dest.port), "--", str(local),
               f"{self.dest.user + '@' if self.dest.user else ''}{host}:{remote_path}"]
        proc = self._run(cmd, timeout, f"copying {local.name}")
        if proc.returncode != 0:  # devices without an SFTP subsystem (dropbear): the legacy scp protocol
            proc = self._run(cmd[:2] + ["-O"] + cmd[2:], timeout, f"copying {local.name}")
        if proc.returncode != 0:
            raise TargetUnreachable(f"scp to {self.dest} failed: {last_line(proc.stderr)}")


@dataclass(frozen=True)
class SSHConfig:
    """Where and how to reach the device; ``target``: the device class its time is recorded as."""

    dest: str                                  # user@host[:port]
    identity: str | None = None
    remote_python: str = "python3"
    known_hosts: str | None = None             # None: ssh's own known_hosts files and configuration
    connect_timeout: int = 10
    use_tool: bool = True                      # also run the format's native tool when the device has it
    accept_new_host_key: bool = False
    target: Target | None = None               # checked against the machine that answered (arch)

    def __post_init__(self) -> None:
        parse_dest(self.dest)


@register_runner("ssh")
class SSHRunner:
    """A device over SSH: remote_runner.py there (and its native benchmark tool, when on PATH)."""

    config_type = SSHConfig

    def __init__(self, config: SSHConfig, on_progress: OnProgress | None = None) -> None:
        self.config, self.on_progress = config, on_progress

    def describe(self, spec: RunSpec) -> str:
        return f": copy the artifact and the runner to {self.config.dest}"

    def measure(self, spec: RunSpec) -> list[Measurement]:
        c = self.config
        sess = SSHSession(parse_dest(c.dest), c.identity, c.known_hosts, c.connect_timeout, c.accept_new_host_key)
        res = _run_remote(sess, spec, c.remote_python, c.use_tool, self.on_progress)
        arch = c.target.arch if c.target is not None else None
        if c.target is not None and c.target.name != "host" and arch and not same_arch(res.get("machine"), arch):
            raise ConfigError(f"--ssh {c.dest} ran on a {res.get('machine') or 'unknown'} machine "
                              f"({res.get('cpu') or 'unknown CPU'}), but target {c.target.name!r} is {arch}; its "
                              f"time is not a {c.target.name} time: pass the right --target or --ssh")
        m = runner_measurement(res, "ssh", dest=str(sess.dest), host_key=sess.host_key_policy)
        details = {**m.details, "target_arch": arch, "label": res.get("label")}
        if "tool" in res:
            details["tool"] = {k: res["tool"][k] for k in ("tool", "path", "parsed")}
        return [replace(m, details=details, raw={"ssh": res["raw_stdout"]})]


def _run_remote(sess: SSHSession, spec: RunSpec, remote_python: str, use_tool: bool,
                on_progress: OnProgress | None) -> dict[str, Any]:
    """Copy the artifact and remote_runner.py into a fresh remote directory, run, clean up."""
    t = spec.timeout_s
    proc = sess.run(["mktemp", "-d", "/tmp/edgeprune.XXXXXXXX"], t, "mktemp")
    rdir = proc.stdout.strip()
    if proc.returncode != 0 or not _REMOTE_DIR_RE.match(rdir):
        raise TargetUnreachable(f"ssh {sess.dest}: could not create a work directory: {last_line(proc.stderr)}")
    try:
        rmodel = f"{rdir}/model{spec.artifact_type.suffixes[0]}"
        sess.put(Path(spec.artifact), rmodel, t)
        sess.put(RUNNER_SCRIPT, f"{rdir}/remote_runner.py", t)
        words = [remote_python, f"{rdir}/remote_runner.py", *spec.runner_args(rmodel, progress=on_progress is not None),
                 "--label", Path(spec.artifact).name]
        proc = sess.run(words, t, "the benchmark", on_progress)
        if proc.returncode != 0:
            raise TargetUnreachable(f"ssh {sess.dest}: the runner failed with {remote_python!r}: "
                                    f"{last_line(proc.stderr or proc.stdout)} (is onnxruntime / ai-edge-litert "
                                    f"installed for it? pass --remote-python)")
        res = parse_runner_output(proc.stdout, f"ssh {sess.dest}")
        res["raw_stdout"] = proc.stdout[-4000:]
        res["remote_dir"] = rdir
        if use_tool:
            tool = _native_tool(sess, spec, rmodel)
            if tool:
                res["tool"] = tool
        return res
    finally:
        try:
            sess.run(["rm", "-rf", "--", rdir], min(t, 60), "clean-up")
        except TargetUnreachable:
            pass


def _native_tool(sess: SSHSession, spec: RunSpec, rmodel: str) -> dict[str, Any] | None:
    """Also run the format's native benchmark tool (onnxruntime_perf_test, benchmark_model) if on PATH."""
    if spec.artifact_type.device_tool is None:
        return None
    tool: DeviceTool = spec.artifact_type.tool()
    probe = sess.run_script(f"command -v {shlex.quote(tool.name)}", 30, "tool probe")
    path = probe.stdout.strip()
    if probe.returncode != 0 or not path:
        return None
    proc = sess.run(tool.argv(path, rmodel, spec, "cpu"), spec.timeout_s, tool.name)
    text = proc.stdout + "\n" + proc.stderr
    return {"tool": tool.name, "path": path, "returncode": proc.returncode, "parsed": tool.parse(text),
            "raw": text[-4000:]}
