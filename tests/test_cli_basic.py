"""The CLI end to end (finetune, eval, demo) through the real entry point, and one-line errors for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeprune.cli import main
from edgeprune.io import read_json


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


FT = ["--max-steps", "4", "--batch-size", "8", "--train-limit", "32", "--eval-limit", "32", "--max-seq-len", "48",
      "--lr", "1e-3", "--save-steps", "2"]


def test_finetune_then_eval_end_to_end(tiny_bert: Path, glue: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(["finetune", "--model", tiny_bert, "--task", "mrpc", "--data", glue, "--out", run, *FT],
                             capsys)
    assert code == 0, err
    metrics = read_json(run / "metrics.json")
    assert f"MRPC dev f1 = {metrics['main']:.4f}" in out
    assert read_json(run / "config.json")["train"]["max_steps"] == 4

    # a finished run is not overwritten by accident
    code, _, err = run_cli(["finetune", "--model", tiny_bert, "--task", "mrpc", "--data", glue, "--out", run, *FT],
                           capsys)
    assert_one_line_error(code, err, "already holds a finished run", "--overwrite")

    # eval infers the task from the run folder and writes JSON
    code, out, err = run_cli(["eval", "--model", run, "--data", glue, "--limit", "32", "--max-seq-len", "48",
                              "--out", tmp_path / "m.json"], capsys)
    assert code == 0, err
    ev = json.loads((tmp_path / "m.json").read_text())
    assert ev["task"] == "MRPC" and ev["num_examples"] == 32
    assert ev["main"] == pytest.approx(metrics["main"], abs=1e-9)
    assert f"main f1 = {ev['main']:.4f}" in out


def test_resume_picks_up_the_saved_settings(tiny_bert: Path, glue: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(["finetune", "--model", tiny_bert, "--task", "sst2", "--data", glue, "--out", run, *FT],
                           capsys)
    assert code == 0, err
    (run / "metrics.json").unlink()  # as if it had been interrupted after its last checkpoint
    code, out, err = run_cli(["finetune", "--model", tiny_bert, "--task", "sst2", "--data", glue, "--out", run,
                              "--resume"], capsys)
    assert code == 0, err
    assert read_json(run / "metrics.json")["train"]["resumed_from"] == "checkpoint-4"


def test_demo_stages_run_on_a_tiny_model(tiny_bert: Path, tmp_path: Path, capsys, monkeypatch):
    from dataclasses import replace

    import edgeprune.commands.demo as demo

    short = replace(demo.demo_train_config(), epochs=1.0)  # the stages, not the schedule, are under test here
    monkeypatch.setattr(demo, "demo_train_config", lambda: short)
    real_cc = demo.demo_compress_config
    monkeypatch.setattr(demo, "demo_compress_config",
                        lambda *a: replace(real_cc(*a), epochs_reg=0.5, epochs_retrain=0.5))
    code, out, err = run_cli(["demo", "--model", tiny_bert, "--out", tmp_path / "demo"], capsys)
    assert code == 0, err
    report = read_json(tmp_path / "demo" / "demo_report.json")
    assert [s["name"] for s in report["stages"]] == ["finetune", "evaluate", "compress", "export", "profile", "check"]
    st = {s["name"]: s for s in report["stages"]}
    assert st["evaluate"]["dev"]["num_examples"] == 60 and len(st["evaluate"]["examples"]) == 4
    assert "dev accuracy" in out
    assert st["finetune"]["train"]["global_step"] == 12  # 192 sentences / batch 16
    assert st["compress"]["compression"]["prunable_encoder"]["compression"] == pytest.approx(2.0, rel=0.05)
    assert st["export"]["verification"]["passed"] is True
    assert st["export"]["file_bytes"] < st["export"]["dense_file_bytes"]
    assert {(r["target"], r["kind"]) for r in st["profile"]["results"]} >= {("host", "measured"), ("rpi4", "predicted")}
    assert st["check"]["passed"] is True
    assert (tmp_path / "demo" / "bundle" / "manifest.json").is_file()


@pytest.mark.parametrize("argv,needles", [
    (["finetune", "--model", "{tiny}", "--task", "sst3", "--data", "{glue}", "--out", "{tmp}/r"], ["unknown GLUE task"]),
    (["finetune", "--model", "{tiny}", "--task", "mrpc", "--data", "{tmp}/nodata", "--out", "{tmp}/r"],
     ["does not exist"]),
    (["finetune", "--model", "{tmp}", "--task", "mrpc", "--data", "{glue}", "--out", "{tmp}/r"], ["no config.json"]),
    (["finetune", "--model", "{gpt2}", "--task", "mrpc", "--data", "{glue}", "--out", "{tmp}/r"],
     ["unsupported architecture 'gpt2'"]),
    (["finetune", "--model", "{tiny}", "--task", "mrpc", "--data", "{glue}", "--out", "{tmp}/r", "--lr", "-1"],
     ["lr"]),
    (["finetune", "--model", "{tiny}", "--task", "mrpc", "--data", "{glue}", "--out", "{tmp}/r", "--resume",
      "--overwrite"], ["contradict"]),
    (["eval", "--model", "{tiny}", "--data", "{glue}"], ["pass --task"]),
    (["eval", "--model", "{tiny}", "--task", "stsb", "--data", "{glue}"], ["STS-B needs 1"]),
    (["eval", "--model", "minilm-l7", "--task", "sst2", "--data", "{glue}"], ["an alias (minilm-l6)"]),
    (["finetune", "--task", "mrpc"], ["Missing option"]),
])
def test_bad_input_is_one_line_exit_2(argv: list[str], needles: list[str], tiny_bert: Path, glue: Path,
                                      tmp_path: Path, capsys):
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    args = [a.format(tiny=tiny_bert, glue=glue, tmp=tmp_path, gpt2=gpt2) for a in argv]
    code, _, err = run_cli(args, capsys)
    if "Missing option" in needles:  # click's own usage errors: exit 2, usage + one error line
        assert code == 2 and "Missing option '--model'" in err
        return
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "r" / "config.json").exists()  # nothing written for bad input


def test_one_overwrite_rule_for_finetune_eval_and_demo(tiny_bert: Path, glue: Path, tmp_path: Path, capsys):
    """A folder edgeprune did not write is never used as a run; an existing output file or demo is
    replaced only with --overwrite (checked before any work)."""
    from edgeprune.commands.demo import run_demo
    from edgeprune.errors import ConfigError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        code, _, err = run_cli(["finetune", "--model", tiny_bert, "--task", "mrpc", "--data", glue, "--out", mine,
                                *FT, *extra], capsys)
        assert_one_line_error(code, err, "is not empty and holds no run")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    metrics = tmp_path / "m.json"
    metrics.write_text("{}")
    code, _, err = run_cli(["eval", "--model", tiny_bert, "--task", "mrpc", "--data", glue, "--limit", "4",
                            "--out", metrics], capsys)
    assert_one_line_error(code, err, f"{metrics} already exists; pass --overwrite")
    code, _, err = run_cli(["eval", "--model", tiny_bert, "--task", "mrpc", "--data", glue, "--limit", "4",
                            "--max-seq-len", "32", "--out", metrics, "--overwrite"], capsys)
    assert code == 0, err
    assert json.loads(metrics.read_text())["num_examples"] == 4

    demo = tmp_path / "demo"
    run_demo(demo, stages=[])
    with pytest.raises(ConfigError, match="already holds a finished demo run; pass --overwrite"):
        run_demo(demo, stages=[])
    (demo / "finetune").mkdir()
    assert run_demo(demo, stages=[], overwrite=True)["stages"] == [] and not (demo / "finetune").exists()
    with pytest.raises(ConfigError, match="holds no demo run"):
        run_demo(mine, stages=[], overwrite=True)
