"""What ``check`` looks at: the artifact, its bundle manifest and the reports written next to it.

Accepted inputs:
  * a bundle folder written by ``edgeprune export`` (``manifest.json`` names the artifact);
  * the artifact inside such a bundle (the bundle is used);
  * a bare ``.onnx`` / ``.tflite`` file: size, parameters and latency (from ``profile-<stem>/profile.json``,
    ``<stem>.profile.json`` or ``profile.json`` beside it) can be gated; compression and accuracy cannot.

Reports read (fields in parentheses):
  * ``manifest.json``: ``artifact``, ``format``, ``files`` (integrity), ``compression``
    (named definitions -> ratio), ``metrics.dense`` / ``metrics.pruned`` (optional), ``params``;
  * ``verification.json`` (``metric``, ``metric_artifact``, ``metric_torch``, ``num_examples``);
  * ``export_report.json`` (``metrics.dense`` / ``metrics.pruned`` if the manifest has none);
  * ``profile.json`` (``artifact``, ``file_bytes``, ``sha256``, ``results[].target/kind/unit/xnnpack/latency_ms``,
    predicted ``gpu_latency_ms``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.bundle import MANIFEST, read_manifest, verify_files
from edgeprune.errors import ConfigError, ModelError
from edgeprune.formats import FORMATS
from edgeprune.io import read_json

from .params import ArtifactFiles, ParamCount, artifact_files, count_params, countable_format

PROFILE_JSON = "profile.json"
VERIFICATION_JSON = "verification.json"
EXPORT_REPORT_JSON = "export_report.json"


@dataclass(frozen=True)
class Report:
    """One JSON report: its data, or why it could not be read."""

    path: Path
    data: dict[str, Any] | None
    problem: str | None = None


@dataclass
class Evidence:
    given: Path
    artifact: Path
    format: str
    bundle_dir: Path | None = None
    manifest: dict[str, Any] | None = None
    integrity: list[str] | None = None  # None when not a bundle
    verification: Report | None = None
    profile: Report | None = None
    export_report: Report | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_bundle(self) -> bool:
        return self.bundle_dir is not None

    def rel(self, path: Path | None) -> str | None:
        """A path as shown in reports: relative to the working directory when possible."""
        if path is None:
            return None
        try:
            return os.path.relpath(path)
        except ValueError:  # pragma: no cover
            return str(path)

    def files(self) -> ArtifactFiles:
        if "files" not in self._cache:
            self._cache["files"] = artifact_files(self.artifact)
        return self._cache["files"]

    def params(self) -> ParamCount:
        if "params" not in self._cache:
            self._cache["params"] = count_params(self.artifact)
        return self._cache["params"]

    def compression(self) -> dict[str, Any]:
        """Named compression definitions from the manifest (compress's compression.json)."""
        comp = (self.manifest or {}).get("compression") or {}
        return comp if isinstance(comp, dict) else {}

    def reference_metric(self, which: str) -> tuple[float, str] | None:
        """``metrics.<which>`` ("dense" or "pruned") main metric (fraction) and the file it came from.

        Looked up in manifest.json ``metrics``, then export_report.json ``metrics``, then the
        manifest's ``compression.metrics`` (a whole compression.json copied in).
        """
        candidates: list[tuple[Any, Path | None]] = []
        if self.manifest is not None and self.bundle_dir is not None:
            candidates.append(((self.manifest.get("metrics") or {}), self.bundle_dir / MANIFEST))
        if self.export_report is not None and self.export_report.data is not None:
            candidates.append(((self.export_report.data.get("metrics") or {}), self.export_report.path))
        if self.bundle_dir is not None:
            candidates.append(((self.compression().get("metrics") or {}), self.bundle_dir / MANIFEST))
        for metrics, path in candidates:
            if not isinstance(metrics, dict) or which not in metrics:
                continue
            value = metrics[which]
            if isinstance(value, dict):
                value = value.get("main")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value), self.rel(path) or ""
        return None


def _read_report(path: Path) -> Report | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except Exception as e:
        return Report(path, None, f"{path.name} is not valid JSON ({type(e).__name__})")
    if not isinstance(data, dict):
        return Report(path, None, f"{path.name} does not hold a JSON object")
    return Report(path, data)


def _find_profile(artifact: Path, bundle_dir: Path | None) -> Report | None:
    """``profile.json`` in the bundle, in ``profile-<stem>/`` beside the artifact, ``<stem>.profile.json``, or
    a ``profile.json`` beside it whose ``artifact`` names this file."""
    candidates = []
    if bundle_dir is not None:
        candidates.append(bundle_dir / PROFILE_JSON)
    # `edgeprune profile FILE` writes FILE's folder/profile-<stem>/profile.json; a bundle gets it inside
    candidates += [artifact.parent / f"profile-{artifact.stem}" / PROFILE_JSON,
                   artifact.parent / f"{artifact.stem}.{PROFILE_JSON}", artifact.parent / PROFILE_JSON]
    for path in dict.fromkeys(candidates):
        rep = _read_report(path)
        if rep is None:
            continue
        # A profile.json beside a bare artifact may describe another model in the same folder.
        named = (rep.data or {}).get("artifact")
        if bundle_dir is None and path.parent == artifact.parent and path.name == PROFILE_JSON and named and \
                Path(str(named)).name != artifact.name:
            continue
        return rep
    return None


def _bundle_for_file(path: Path) -> Path | None:
    """The bundle folder that holds ``path`` as its artifact, if any."""
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = read_json(manifest)
    except Exception:
        raise ConfigError(f"{manifest} is not valid JSON; the bundle is corrupt, re-run `edgeprune export`") from None
    art = data.get("artifact") if isinstance(data, dict) else None
    if art and (path.parent / art).resolve() == path.resolve():
        return path.parent
    return None


def gather(path: str | os.PathLike[str], profile: str | os.PathLike[str] | None = None) -> Evidence:
    """Locate the artifact and read every report ``check`` may need (cheap: no model is parsed here)."""
    given = Path(path)
    if not given.exists():
        raise ConfigError(f"{given} does not exist; pass a bundle folder from `edgeprune export` or an .onnx/.tflite file")
    if given.is_dir():
        bundle_dir: Path | None = given
    else:
        countable_format(given)  # ModelError for anything but .onnx/.tflite
        bundle_dir = _bundle_for_file(given)

    if bundle_dir is None:
        ev = Evidence(given, given, countable_format(given).name)
    else:
        manifest = read_manifest(bundle_dir)
        if not isinstance(manifest, dict):
            raise ConfigError(f"{bundle_dir / MANIFEST} does not hold a JSON object; re-run `edgeprune export`")
        rel = manifest.get("artifact")
        if not isinstance(rel, str) or not rel:
            raise ConfigError(f"{bundle_dir / MANIFEST} names no artifact; re-run `edgeprune export`")
        artifact = bundle_dir / rel
        fmt = manifest.get("format")
        known = FORMATS.get(fmt) if isinstance(fmt, str) else None
        if known is None or known.param_counter is None:
            try:
                fmt = countable_format(artifact).name
            except ModelError:
                raise ConfigError(f"{bundle_dir / MANIFEST}: unknown format {manifest.get('format')!r} and "
                                  f"artifact {rel!r} is neither .onnx nor .tflite") from None
        problems = verify_files(bundle_dir, manifest)
        if rel not in (manifest.get("files") or {}):
            problems.insert(0, f"{rel}: the artifact has no sha256 in manifest.json (bundle not written by export?)")
        ver_rel = manifest.get("verification") or VERIFICATION_JSON
        ev = Evidence(given, artifact, fmt, bundle_dir, manifest, problems,
                      verification=_read_report(bundle_dir / str(ver_rel)),
                      export_report=_read_report(bundle_dir / EXPORT_REPORT_JSON))
    if profile is not None:
        p = Path(profile)
        if not p.is_file():
            raise ConfigError(f"profile {p} does not exist; run `edgeprune profile` first")
        ev.profile = _read_report(p)
    else:
        ev.profile = _find_profile(ev.artifact, ev.bundle_dir)
    return ev
