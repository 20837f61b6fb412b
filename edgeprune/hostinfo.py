"""This machine's CPU model: for profile reports and for keying cached latencies to the CPU they were taken on."""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str | None:
    """``model name`` (x86), ``Hardware`` / ``CPU part`` (ARM) or ``cpu model`` (MIPS) of /proc/cpuinfo, else
    ``platform.processor()``; None when neither says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "cpu part", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
