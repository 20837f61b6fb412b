"""Export bundles: the artifact(s), tokenizer files, ``manifest.json`` (with sha256 of every file) and reports."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .io import read_json, sha256_file, write_json

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
TOOLS = ("edgeprune", "torch", "transformers", "onnx", "onnxruntime", "litert-torch", "ai-edge-quantizer", "ai-edge-litert")


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_manifest(bundle_dir: str | os.PathLike[str], fields: dict[str, Any]) -> Path:
    """Write ``manifest.json`` with ``fields`` plus ``files`` (relpath -> sha256, bytes) and ``tools``.

    Expected fields: format, artifact (relpath), model, task, labels, seq_len, dtype, mode, compression.
    """
    root = Path(bundle_dir)
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.startswith("."):
            rel = p.relative_to(root).as_posix()
            files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {"manifest_version": MANIFEST_VERSION, **fields, "files": files, "tools": tool_versions()}
    return write_json(root / MANIFEST, manifest)


def bundle_kind(path: Path) -> Literal["finished"] | None:
    """For the overwrite rule (:mod:`edgeprune.outputs`): an export bundle, or a folder edgeprune did not write."""
    return "finished" if (path / MANIFEST).is_file() else None


def read_manifest(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(bundle_dir) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{bundle_dir} is not a bundle (no {MANIFEST}); pass the folder that `edgeprune export` wrote")
    try:
        return read_json(path)
    except Exception as e:
        raise ConfigError(f"{path} is not valid JSON ({e})") from None


def verify_files(bundle_dir: str | os.PathLike[str], manifest: dict[str, Any] | None = None) -> list[str]:
    """Problems with the bundle's files (missing, size or sha256 mismatch); empty when intact."""
    root = Path(bundle_dir)
    manifest = manifest or read_manifest(root)
    problems = []
    for rel, meta in manifest.get("files", {}).items():
        p = root / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif p.stat().st_size != meta.get("bytes"):
            problems.append(f"{rel}: {p.stat().st_size} bytes, manifest says {meta.get('bytes')} (truncated or replaced)")
        elif sha256_file(p) != meta.get("sha256"):
            problems.append(f"{rel}: sha256 differs from the manifest (file was modified)")
    return problems
