"""``edgeprune export`` end to end through the real CLI entry point (exit codes, one-line errors)."""
from __future__ import annotations

import json

import pytest

from edgeprune.cli import main
from test_export_onnx import make_run


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


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
