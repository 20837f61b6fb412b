"""``edgeprune export`` end to end through the real CLI entry point (exit codes, one-line errors)."""
from __future__ import annotations

import json

import pytest

from tests.support.exports import make_run, run_cli


def test_export_cli_end_to_end(tiny_bert, tmp_path, glue, capsys):
    run = make_run(tiny_bert, tmp_path / "run")
    code, out, err = run_cli(["export", str(run), "--format", "onnx", "--dtype", "fp32", "--mode", "packed",
                              "--seq-len", "64", "--data", str(glue), "--verify-examples", "16",
                              "--out", str(tmp_path / "bundle")], capsys)
    assert code == 0, err
    assert "verified on 16" in out
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["mode"] == "packed" and manifest["seq_len"] == 64
    assert (tmp_path / "bundle" / manifest["artifact"]).is_file()


@pytest.mark.parametrize("args,msg", [
    (["--dtype", "int4"], "unknown --dtype"),
    (["--mode", "sparse"], "unknown --mode"),
    (["--seq-len", "long"], "--seq-len"),
    (["--format", "coreml"], "unknown export format"),
])
def test_export_cli_bad_flags_one_line_exit_2(args, msg, tiny_bert, tmp_path, capsys):
    code, out, err = run_cli(["export", str(tiny_bert), "--mode", "dense", *args, "--out", str(tmp_path / "b")],
                             capsys)
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_export_cli_not_a_run(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    code, _, err = run_cli(["export", str(tmp_path / "junk"), "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and err.startswith("error:") and "not a compress run" in err
    assert not (tmp_path / "b").exists()


def test_export_stage_lines_with_progress_and_nothing_else(tiny_bert, tmp_path, glue):
    """Every long step says what it does and how far it is (stderr); results alone on stdout; no
    onnxruntime quantizer warning, torch warning or C++ log line in between."""
    import os
    import subprocess
    import sys

    run = make_run(tiny_bert, tmp_path / "run")
    p = subprocess.run([sys.executable, "-m", "edgeprune", "export", str(run), "--dtype", "int8", "--seq-len", "32",
                        "--int8-layer-choice", "measure", "--calib-examples", "8", "--data", str(glue),
                        "--verify-examples", "16", "--out", str(tmp_path / "bundle")],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0].startswith("wrote ") and out[1].startswith("verified on 16 ") and len(out) <= 3, p.stdout
    err = p.stderr.splitlines()
    assert all(ln.startswith("[export] ") for ln in err), p.stderr
    layers = len([ln for ln in err if ln.startswith("[export] time int8 layers 0/")])
    for expected in ("[export] pack layers 0/12", "[export] pack layers 12/12", "[export] trace the packed ONNX graph",
                     "[export] simplify", "[export] quantize to int8", "[export] calibrate int8 activations on 8",
                     "[export] verify against PyTorch on dev examples 0/16",
                     "[export] verify against PyTorch on dev examples 16/16", "[export] writing the bundle"):
        assert any(ln.startswith(expected) for ln in err), (expected, p.stderr)
    assert layers == 1 and any(ln.startswith("[export] time int8 layers") and ln.endswith("/8") for ln in err)


def test_export_overwrite_rule(tiny_bert, tmp_path, capsys):
    args = ["export", str(tiny_bert), "--mode", "dense", "--no-verify", "--seq-len", "16"]
    out = tmp_path / "bundle"
    code, _, err = run_cli([*args, "--out", str(out)], capsys)
    assert code == 0, err
    first = (out / "manifest.json").read_text()
    code, _, err = run_cli([*args, "--out", str(out)], capsys)
    assert code == 2 and err == f"error: --out {out} already holds a finished export bundle; pass --overwrite to " \
        "replace it, or choose another --out\n"
    assert (out / "manifest.json").read_text() == first
    code, _, err = run_cli([*args, "--out", str(out), "--overwrite"], capsys)
    assert code == 0, err
    # a folder export did not write is never replaced, not even with --overwrite
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run_cli([*args, "--out", str(mine), "--overwrite"], capsys)
    assert code == 2 and "is not empty and holds no export bundle" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
