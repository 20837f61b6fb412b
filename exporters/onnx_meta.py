"""ONNX model metadata: what an app (or optimum) needs to use ``model.onnx`` without edgeprune."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def stamp_metadata(path: Path, props: dict[str, Any]) -> dict[str, str]:
    """Replace ``metadata_props`` of the ONNX file at ``path`` with ``props`` (JSON for non-strings) and set the
    producer to edgeprune and its version; returns the written props."""
    import onnx

    from edgeprune import __version__

    model = onnx.load(str(path))
    model.producer_name = "edgeprune"
    model.producer_version = __version__
    del model.metadata_props[:]
    written = {"edgeprune_version": __version__}
    written.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in props.items()})
    for k, v in written.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))
    return written


def read_metadata(path: Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
