"""Hugging Face optimum loads edgeprune's ONNX bundle as users do and answers like the masked PyTorch model.

``ORTModelForSequenceClassification.from_pretrained(bundle)`` and ``AutoTokenizer.from_pretrained(bundle)`` run in
the side venv ``.venv-optimum`` (optimum needs transformers 4, the project pins 5), through
tests/support/optimum_probe.py in a subprocess. Needs `bash scripts/setup-optimum-venv.sh` (``make test`` runs it
via scripts/setup-test-system.sh); without it the tests fail saying so.
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeprune.exporters.api import export
from tests.support.exports import cfg, edgeprune_nodes, head_run, make_run

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "support" / "optimum_probe.py"
EXAMPLES = 6


@pytest.fixture(scope="module")
def optimum_python() -> Path:
    venv = Path(os.environ.get("EDGEPRUNE_OPTIMUM_VENV", ROOT / ".venv-optimum"))
    py = venv / "bin" / "python"
    if not py.is_file():
        pytest.fail(f"optimum venv not found at {venv}: run `bash scripts/setup-optimum-venv.sh` (make test does)")
    return py


def run_probe(py: Path, requests: list[dict], tmp: Path) -> list[dict]:
    """optimum's answer to each request (one process for all: its imports are most of the time)."""
    (tmp / "request.json").write_text(json.dumps(requests))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": ""}
    p = subprocess.run([str(py), str(PROBE), str(tmp / "request.json"), str(tmp / "out.json")], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"optimum probe failed (rc {p.returncode}):\n{p.stderr[-3000:]}"
    return json.loads((tmp / "out.json").read_text())


CASES = {  # id -> (checkpoint fixture, mode, seq_len, masks)
    "bert-packed": ("tiny_bert", "packed", None, "blocks"),
    "bert-structured": ("tiny_bert", "structured", 32, "units"),
    "distilbert-packed": ("tiny_distilbert", "packed", None, "blocks"),
    "roberta-structured": ("tiny_roberta", "structured", None, "heads"),
}


@pytest.fixture(scope="module")
def texts(glue) -> list[list[str]]:
    from edgeprune.data.glue import load_split

    return [[e.text_a, e.text_b] for e in load_split("mrpc", "dev", glue, limit=EXAMPLES)]


@pytest.fixture(scope="module")
def exported(request, tmp_path_factory, glue) -> dict[str, tuple[Path, Path]]:
    """Case id -> (run dir, bundle dir), every bundle exported with edgeprune's Python API."""
    out = {}
    for case, (fixture, mode, seq_len, masks) in CASES.items():
        ckpt = request.getfixturevalue(fixture)
        root = tmp_path_factory.mktemp(case)
        if masks == "heads":
            run = head_run(ckpt, root / "run")
        else:
            run = make_run(ckpt, root / "run", whole_units=masks == "units")
        export(run, cfg(glue, mode=mode, seq_len=seq_len), root / "bundle")
        out[case] = (run, root / "bundle")
    return out


@pytest.fixture(scope="module")
def answers(optimum_python, exported, texts, tmp_path_factory) -> dict[str, dict]:
    reqs = [{"bundle": str(exported[c][1]), "texts": texts, "max_length": CASES[c][2]} for c in CASES]
    return dict(zip(CASES, run_probe(optimum_python, reqs, tmp_path_factory.mktemp("probe"))))


@pytest.mark.parametrize("case", CASES)
def test_optimum_loads_bundle_and_matches_masked_model(case, answers, exported, texts):
    from transformers import AutoTokenizer

    from edgeprune.data.glue import get_task
    from edgeprune.exporters.prepared import prepare, torch_logits
    from edgeprune.rundir import open_run

    _, mode, seq_len, _ = CASES[case]
    run, bundle = exported[case]
    got = answers[case]
    assert "error" not in got, f"optimum could not load or run the {case} bundle:\n{got.get('error')}"
    if mode == "packed":  # the point of packed mode: optimum's session must run edgeprune's packed ops
        assert edgeprune_nodes(bundle / "model.onnx")
    assert got["model_class"] == "ORTModelForSequenceClassification"
    assert got["versions"]["transformers"].startswith("4."), got["versions"]  # really the other stack

    # transformers 4 reads the tokenizer files that transformers 5 wrote into the bundle the same way
    tok = AutoTokenizer.from_pretrained(bundle, local_files_only=True)
    ours = tok([t[0] for t in texts], [t[1] for t in texts], truncation=True, return_tensors="np",
               padding="max_length" if seq_len else True, max_length=seq_len or 64)
    assert got["encodings"]["input_ids"] == ours["input_ids"].tolist()

    model = prepare(open_run(run), "mrpc").model  # the masked PyTorch model every artifact is verified against
    takes = inspect.signature(model.forward).parameters
    feeds = {k: np.asarray(v, np.int64) for k, v in got["encodings"].items() if k in takes}
    want = torch_logits(model, feeds)
    logits = np.asarray(got["logits"], np.float32)
    assert logits.shape == want.shape == (EXAMPLES, 2)
    np.testing.assert_allclose(logits, want, atol=1e-4)

    manifest = json.loads((bundle / "manifest.json").read_text())
    id2label = [got["id2label"][str(i)] for i in range(len(got["id2label"]))]
    assert id2label == manifest["labels"] == list(get_task("mrpc").label_names)
