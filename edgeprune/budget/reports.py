"""The gate's verdict for people (a table), CI (JUnit XML, GitHub annotations) and pull requests (Markdown)."""
from __future__ import annotations

import os
import platform
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.io import atomic_file
from edgeprune.tables import Column, Table, markdown_lines
from .config import BUDGETS_ARG, OVERRIDES_ARG
from .gate import FAIL, MISSING, PASS, BudgetResult

if TYPE_CHECKING:
    from . import CheckResult

_STATUS_TEXT = {PASS: "pass", FAIL: "FAIL", MISSING: "MISSING"}
_STATUS_STYLE = {PASS: "green", FAIL: "bold red", MISSING: "bold yellow"}
_STATUS_MD = {PASS: "✅ pass", FAIL: "❌ fail", MISSING: "⚠️ no data"}


def summary_line(result: CheckResult) -> str:
    bad = [r for r in result.results if not r.passed]
    n = len(result.results)
    if not bad:
        return f"all {n} checks hold for {result.artifact_display}"
    return f"{len(bad)} of {n} checks failed for {result.artifact_display}: " + \
        "; ".join(f"{r.name}: {r.reason}" for r in bad)


# ----------------------------------------------------------------------------------------------
# Terminal

def details_text(r: BudgetResult) -> str:
    """Why it failed (and how it was measured), or how it was measured when it passed."""
    if r.passed:
        return r.detail or r.reason
    return f"{r.reason} [{r.detail}]" if r.detail and r.status == FAIL and r.name != "integrity" else r.reason


def table(result: CheckResult) -> Table:
    """budget, limit, actual, verdict, how it was measured."""
    cfg = f"budgets from {result.config_display}" if result.config_display else "budgets from the command line"
    cols = (Column("check"), Column("limit", right=True), Column("actual", right=True),
            Column("result", styles={_STATUS_TEXT[s]: _STATUS_STYLE[s] for s in _STATUS_TEXT}),
            Column("details", fold=True))
    rows = [(r.name, r.limit_text, r.actual_text, _STATUS_TEXT[r.status], details_text(r)) for r in result.results]
    return Table(cols, rows, title=f"edgeprune check: {result.artifact_display}", caption=cfg)


# ----------------------------------------------------------------------------------------------
# JUnit XML (the de-facto schema read by Jenkins, GitLab, GitHub test reporters: testsuites >
# testsuite > testcase with failure/error children and tests/failures/errors/skipped/time counts)

def junit_xml(result: CheckResult) -> str:
    failures = sum(r.status == FAIL for r in result.results)
    missing = sum(r.status == MISSING for r in result.results)
    total_time = sum(r.duration_s for r in result.results)
    counts = {"tests": str(len(result.results)), "failures": str(failures + missing), "errors": "0",
              "skipped": "0", "time": f"{total_time:.6f}"}
    root = ET.Element("testsuites", {"name": "edgeprune check", **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": f"edgeprune.check.{result.suite_name}", **counts,
        "timestamp": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", ""),
        "hostname": platform.node() or "localhost",
    })
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "artifact", "value": result.artifact_display})
    ET.SubElement(props, "property", {"name": "budgets", "value": result.config_display or "command line"})
    for r in result.results:
        case = ET.SubElement(suite, "testcase", {"name": r.name, "classname": f"edgeprune.check.{result.suite_name}",
                                                 "time": f"{r.duration_s:.6f}"})
        if not r.passed:
            kind = "BudgetExceeded" if r.status == FAIL else "MissingMeasurement"
            fail = ET.SubElement(case, "failure", {"message": r.reason, "type": kind})
            fail.text = _case_text(r)
        else:
            out = ET.SubElement(case, "system-out")
            out.text = _case_text(r)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _case_text(r: BudgetResult) -> str:
    lines = [f"limit: {r.limit_text}", f"actual: {r.actual_text}", f"reason: {r.reason}"]
    if r.detail:
        lines.append(f"measured: {r.detail}")
    if r.source:
        lines.append(f"from: {r.source}")
    if r.budget_source:
        lines.append(f"budget set in: {r.budget_source}")
    return "\n".join(lines)


def write_junit(result: CheckResult, path: str | os.PathLike[str]) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(junit_xml(result), encoding="utf-8")
    return Path(path)


# ----------------------------------------------------------------------------------------------
# GitHub Actions workflow commands
# (https://docs.github.com/actions/reference/workflow-commands-for-github-actions)

def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def github_annotations(result: CheckResult) -> list[str]:
    """``::error`` for each failing check (placed on the budget's line when it came from a file),
    ``::notice`` for each passing one (without a file, so passing budgets do not clutter the diff)."""
    lines = []
    for r in result.results:
        title = f"title={_escape_property(f'edgeprune check: {r.name}')}"
        if r.passed:  # notices stay off the diff: no file/line
            msg = f"{r.reason} ({r.detail})" if r.detail else r.reason
            lines.append(f"::notice {title}::{_escape_data(msg)}")
            continue
        props = [title]
        if r.budget_source and not r.budget_source.startswith(("--", BUDGETS_ARG, OVERRIDES_ARG)):
            file, _, line = r.budget_source.partition(":")
            props.insert(0, f"file={_escape_property(file)}" + (f",line={line}" if line.isdigit() else ""))
        lines.append(f"::error {','.join(props)}::{_escape_data(details_text(r))}")
    return lines


# ----------------------------------------------------------------------------------------------
# Markdown (pull-request comment, $GITHUB_STEP_SUMMARY)

def markdown(result: CheckResult) -> str:
    bad = [r for r in result.results if not r.passed]
    head = "✅ all budgets hold" if not bad else f"❌ {len(bad)} of {len(result.results)} checks failed"
    cfg = f"`{result.config_display}`" if result.config_display else "the command line"
    t = table(result)
    rows = [(f"`{r.name}`", r.limit_text, r.actual_text, _STATUS_MD[r.status], details_text(r))
            for r in result.results]
    out = [f"### edgeprune check: {head}", "", f"Artifact `{result.artifact_display}`, budgets from {cfg}.", "",
           *markdown_lines(replace(t, rows=rows))]
    return "\n".join(out) + "\n"


def write_markdown(result: CheckResult, path: str | os.PathLike[str], append: bool = False) -> Path:
    text = markdown(result)
    if append:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")
        return Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
