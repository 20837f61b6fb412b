"""Quiet output: native log lines off unless --verbose, third-party Python warnings off, counting stage lines."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from edgeprune.quiet import Progress

NATIVE = ("import os, sys\n"
          "from edgeprune.quiet import native_stderr_off, stage\n"
          "with native_stderr_off():\n"
          "    os.write(2, b'I0000 port.cc:153] a C++ log line\\n')\n"
          "    stage('[x] ours')\n"
          "    print('a result')\n"
          "os.write(2, b'after the block\\n')\n")


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "EDGEPRUNE_VERBOSE"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**clean, **env})


def test_native_stderr_lines_are_dropped_and_ours_kept():
    p = _python(NATIVE)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "[x] ours\nafter the block\n" and p.stdout == "a result\n"


def test_verbose_shows_native_lines():
    p = _python(NATIVE, EDGEPRUNE_VERBOSE="1")
    assert p.stderr == "I0000 port.cc:153] a C++ log line\n[x] ours\nafter the block\n"


def test_a_native_crash_still_says_where():
    p = _python("import faulthandler\nfrom edgeprune.quiet import native_stderr_off\n"
                "with native_stderr_off():\n    faulthandler._sigsegv()\n")
    assert p.returncode != 0 and "Fatal Python error" in p.stderr and "line 4" in p.stderr


def test_cli_silences_third_party_python_warnings():
    """onnxruntime's quantizer warns through the root logger; torch and others through `warnings`."""
    code = ("import logging, warnings, click, sys\n"
            "from edgeprune import cli\n"
            "@click.command('noisy')\n"
            "def noisy():\n"
            "    logging.warning('Please consider to run pre-processing before quantization')\n"
            "    warnings.warn('a third-party UserWarning')\n"
            "    click.echo('result')\n"
            "cli.SUBCOMMANDS['noisy'] = ('__main__', '')\n"
            "sys.modules['__main__'].command = noisy\n"
            "cli.main(sys.argv[1:])\n")
    quiet = subprocess.run([sys.executable, "-c", code, "noisy"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stdout == "result\n" and quiet.stderr == "", quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code, "--verbose", "noisy"], capture_output=True, text=True,
                          timeout=120)
    assert "pre-processing" in loud.stderr and "UserWarning" in loud.stderr and loud.stdout == "result\n"


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_in_a_log_prints_start_and_end(monkeypatch):
    err = _Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", err)
    with Progress("[export] verify", 256) as p:
        for _ in range(8):
            p.advance(32)
    assert err.getvalue() == "[export] verify 0/256\n[export] verify 256/256\n"


def test_progress_in_a_log_reports_long_stages_every_few_seconds(monkeypatch):
    import edgeprune.quiet as q

    err = _Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", err)
    clock = iter([0.0, 11.0, 12.0, 30.0])
    monkeypatch.setattr(q.time, "monotonic", lambda: next(clock))
    p = Progress("[profile] host: timed runs", 20)
    p.update(5)   # 11 s after the start line: shown
    p.update(6)   # 1 s later: not
    p.update(20)  # done: shown
    assert err.getvalue().splitlines() == ["[profile] host: timed runs 0/20", "[profile] host: timed runs 5/20",
                                           "[profile] host: timed runs 20/20"]


def test_progress_on_a_terminal_redraws_one_line(monkeypatch):
    err = _Stream(tty=True)
    monkeypatch.setattr(sys, "stderr", err)
    items = list(Progress("[export] pack layers", 3).track("abc"))
    assert items == ["a", "b", "c"]
    assert err.getvalue() == "".join(f"\r\x1b[K[export] pack layers {i}/3" for i in range(4)) + "\n"
    err.truncate(0)
    err.seek(0)
    with pytest.raises(RuntimeError):
        with Progress("[export] verify", 4) as p:
            p.advance()
            raise RuntimeError("boom")
    assert err.getvalue().endswith("1/4\n")  # the error is printed below the stage line, not on it


def test_stage_clock_times_each_stage_until_the_next(monkeypatch):
    """Export reports carry ``phases_s`` from this: each stage lasts until the next stage or Progress line."""
    import edgeprune.quiet as q

    now = iter([10.0, 12.5, 13.0, 20.0])
    monkeypatch.setattr(q.time, "monotonic", lambda: next(now))
    with q.StageClock() as clock:
        q.stage("[x] one")
        q.stage("[x] two")
        clock.mark("[x] three")
        got = clock.phases()
    assert got == [{"stage": "[x] one", "s": 2.5}, {"stage": "[x] two", "s": 0.5}, {"stage": "[x] three", "s": 7.0}]
    q.stage("[x] after")  # no clock active: nothing recorded
    assert len(clock.marks) == 3
