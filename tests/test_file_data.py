"""Your own data: CSV / TSV / JSONL files and folders, label sets, carved dev splits, bad rows, and the commands."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeprune.cli import cli
from edgeprune.data import get_task, load_split
from edgeprune.data.files import Columns, FileTask, dev_indices, infer_task
from edgeprune.errors import DataError
from edgeprune.io import read_json


def _sst2_rows(glue: Path, n: int) -> list[tuple[str, str]]:
    with open(glue / "SST-2" / "train.tsv", encoding="utf-8") as f:
        next(f)
        return [tuple(line.rstrip("\n").split("\t")) for _, line in zip(range(n), f)]  # type: ignore[misc]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reviews_csv(glue: Path, tmp_path_factory) -> Path:
    """Real SST-2 sentences with string labels in a column named 'sentiment', plus an extra id column."""
    rows = [[i, s, "positive" if lab == "1" else "negative"] for i, (s, lab) in enumerate(_sst2_rows(glue, 240))]
    return write_csv(tmp_path_factory.mktemp("csv") / "reviews.csv", ["id", "text", "sentiment"], rows)


@pytest.fixture(scope="module")
def reviews_jsonl(glue: Path, tmp_path_factory) -> Path:
    rows = [{"sentence": s, "label": int(lab)} for s, lab in _sst2_rows(glue, 240)]
    return write_jsonl(tmp_path_factory.mktemp("jsonl") / "reviews.jsonl", rows)


def _cli(args: list[str]):
    from edgeprune.errors import EdgepruneError

    res = CliRunner().invoke(cli, args, standalone_mode=False, catch_exceptions=True)
    exc = res.exception
    code = exc.exit_code if isinstance(exc, EdgepruneError) else (0 if exc is None else 1)
    return code, (str(exc) if exc else res.output), res


# ------------------------------------------------------------------------------------------- loading


def test_csv_string_labels_named_column(reviews_csv: Path):
    spec = infer_task(reviews_csv, columns=Columns(label="sentiment"))
    assert isinstance(spec, FileTask)
    assert spec.labels == ("negative", "positive") and spec.label_names == ("negative", "positive")
    assert (spec.text_a, spec.text_b, spec.label_col, spec.metric) == ("text", None, "sentiment", "accuracy")
    train, dev = load_split(spec, "train", reviews_csv), load_split(spec, "dev", reviews_csv)
    assert len(train) + len(dev) == 240 and len(dev) == 24
    assert {e.label for e in train} == {0, 1}
    first = next(line for line in reviews_csv.read_text().splitlines()[1:] if line.startswith("0,"))
    assert train[0].text_a in first or dev[0].text_a in first


def test_carved_dev_is_seeded_disjoint_and_complete(reviews_csv: Path):
    spec = infer_task(reviews_csv, columns=Columns(label="sentiment"), dev_fraction=0.25, seed=7)
    a = [e.text_a for e in load_split(spec, "dev", reviews_csv)]
    assert a == [e.text_a for e in load_split(spec, "dev", reviews_csv)]  # same seed, same rows
    other = infer_task(reviews_csv, columns=Columns(label="sentiment"), dev_fraction=0.25, seed=8)
    assert a != [e.text_a for e in load_split(other, "dev", reviews_csv)]
    held = dev_indices(240, 0.25, 7)
    assert len(held) == 60 and held <= set(range(240))
    assert len(load_split(spec, "train", reviews_csv)) == 180


def test_jsonl_int_labels_and_sentence_default(reviews_jsonl: Path):
    spec = infer_task(reviews_jsonl)
    assert spec.labels == ("0", "1") and spec.text_a == "sentence" and not spec.is_regression


def test_recorded_dict_round_trips(reviews_csv: Path):
    spec = infer_task(reviews_csv, columns=Columns(label="sentiment"))
    assert get_task(json.loads(json.dumps(spec.to_dict()))) == spec


def test_pairs_regression_inferred_and_forced(tmp_path: Path):
    rows = [{"sentence1": f"a{i}", "sentence2": f"b{i}", "label": i / 7} for i in range(20)]
    spec = infer_task(write_jsonl(tmp_path / "sts.jsonl", rows))
    assert spec.is_regression and spec.text_b == "sentence2" and spec.metric == "pearson" and spec.num_labels == 1
    ex = load_split(spec, "train", tmp_path / "sts.jsonl")
    assert all(isinstance(e.label, float) for e in ex) and ex[0].text_b.startswith("b")
    ints = write_csv(tmp_path / "ints.csv", ["text", "label"], [[f"t{i}", i % 5] for i in range(20)])
    assert not infer_task(ints).is_regression
    assert infer_task(ints, problem="regression").is_regression


def test_folder_with_train_and_validation(tmp_path: Path):
    write_csv(tmp_path / "train.csv", ["review", "stars"], [[f"good {i}", "pos"] for i in range(5)]
              + [[f"bad {i}", "neg"] for i in range(5)])
    write_jsonl(tmp_path / "validation.jsonl", [{"review": "fine", "stars": "pos"}, {"review": "awful", "stars": "neg"}])
    spec = infer_task(tmp_path, columns=Columns(text="review", label="stars"))
    assert spec.labels == ("neg", "pos")
    dev = load_split(spec, "dev", tmp_path)
    assert [(e.text_a, e.label) for e in dev] == [("fine", 1), ("awful", 0)]
    assert len(load_split(spec, "train", tmp_path)) == 10


def test_label_order_follows_a_trained_model(tmp_path: Path):
    f = write_csv(tmp_path / "d.csv", ["text", "label"], [["x", "POSITIVE"], ["y", "NEGATIVE"], ["z", "POSITIVE"]])
    assert infer_task(f).labels == ("NEGATIVE", "POSITIVE")
    assert infer_task(f, label_order=["positive", "negative"]).labels == ("POSITIVE", "NEGATIVE")


@pytest.mark.parametrize("name,content,needle", [
    ("bad.csv", "text,label\nfine,a\ntoo,many,fields\n", "bad.csv:3: 3 fields, but the header has 2"),
    ("bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"text": \n', "bad.jsonl:3: not valid JSON"),
    ("bad2.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n{"text": "c", "label": "y"}\n',
     "bad2.jsonl:2: no value in label column 'label'"),
    ("nocol.csv", "body,label\nx,a\ny,b\n", "no text column among text, sentence, sentence1"),
    ("one.csv", "text,label\nx,a\ny,a\n", "only one label"),
    ("bad.tsv", "text\tlabel\nx\ta\ny\n", "bad.tsv:3: 1 fields, but the header has 2"),
])
def test_malformed_rows_name_file_and_line(tmp_path: Path, name: str, content: str, needle: str):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=needle.replace("(", r"\(")):
        infer_task(tmp_path / name)


def test_unknown_dev_label_and_bad_regression_value(tmp_path: Path):
    write_csv(tmp_path / "train.csv", ["text", "label"], [["a", "x"], ["b", "y"]])
    write_csv(tmp_path / "dev.csv", ["text", "label"], [["c", "x"]])
    spec = infer_task(tmp_path)
    write_csv(tmp_path / "dev.csv", ["text", "label"], [["c", "x"], ["d", "z"]])
    with pytest.raises(DataError, match=r"dev.csv:3: label 'z' is not one of x, y"):
        load_split(spec, "dev", tmp_path)
    f = write_csv(tmp_path / "r.csv", ["text", "label"], [["a", "0.5"], ["b", "high"]])
    with pytest.raises(DataError, match=r"r.csv:3: label 'high' is not a number"):
        infer_task(f, problem="regression")


def test_cli_bad_row_is_one_line_exit_2(tiny_bert: Path, tmp_path: Path):
    (tmp_path / "bad.csv").write_text("text,label\nfine,a\nbad,\"unterminated\n")
    p = subprocess.run([sys.executable, "-m", "edgeprune", "finetune", "--model", str(tiny_bert), "--data",
                        str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "bad.csv:" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,needle", [
    (["--task", "sst2"], "reads the GLUE folder layout"),
    (["--task", "classification", "--text-column", "nope"], "no column 'nope'"),
])
def test_cli_data_flag_errors(tiny_bert: Path, reviews_csv: Path, tmp_path: Path, args, needle):
    code, msg, _ = _cli(["finetune", "--model", str(tiny_bert), "--data", str(reviews_csv), "--label-column",
                         "sentiment", *args, "--out", str(tmp_path / "o")])
    assert code == 2 and needle in msg


# ---------------------------------------------------------------------------------------- end to end

FAST = ["--batch-size", "16", "--max-seq-len", "32"]


@pytest.mark.slow
def test_csv_end_to_end_finetune_compress_export_eval(tiny_bert: Path, reviews_csv: Path, tmp_path: Path):
    data = ["--data", str(reviews_csv), "--label-column", "sentiment"]
    code, msg, _ = _cli(["finetune", "--model", str(tiny_bert), *data, "--out", str(tmp_path / "ft"),
                         "--max-steps", "8", "--lr", "1e-3", *FAST])
    assert code == 0, msg
    cfg = read_json(tmp_path / "ft" / "model" / "config.json")
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}
    assert read_json(tmp_path / "ft" / "config.json")["task"]["label_column"] == "sentiment"
    code, msg, _ = _cli(["compress", "--model", str(tmp_path / "ft"), *data, "--out", str(tmp_path / "cr"),
                         "--target", "2x", "--block", "16x1", "--epochs-reg", "1", "--epochs-retrain", "1",
                         "--train-limit", "48", *FAST])
    assert code == 0, msg
    rec = read_json(tmp_path / "cr" / "compression.json")
    assert rec["task"]["labels"] == ["negative", "positive"] and rec["num_eval_examples"] == 24
    assert rec["recipe"] == "edgeprune" and rec["phases"].get("finetune") is None  # the dense run was reused
    pruned = read_json(tmp_path / "cr" / "model" / "config.json")
    assert pruned["id2label"] == {"0": "negative", "1": "positive"}
    code, msg, _ = _cli(["export", str(tmp_path / "cr"), "--data", str(reviews_csv), "--seq-len", "32",
                         "--verify-examples", "16", "--out", str(tmp_path / "bundle")])
    assert code == 0, msg
    ver = read_json(tmp_path / "bundle" / "verification.json")
    assert ver["passed"] and ver["num_examples"] == 16
    man = read_json(tmp_path / "bundle" / "manifest.json")
    assert man["labels"] == ["negative", "positive"] and man["task"]["name"] == "reviews"
    res = CliRunner().invoke(cli, ["eval", "--model", str(tmp_path / "cr"), "--data", str(reviews_csv),
                                   "--max-seq-len", "32", "--out", str(tmp_path / "m.json")], standalone_mode=False)
    assert res.exception is None, res.exception
    m = read_json(tmp_path / "m.json")
    assert m["num_examples"] == 24 and m["task"] == "reviews"
    assert abs(m["main"] - rec["metrics"]["pruned"]["main"]) < 1e-9
    from edgeprune.modelcard import read_front_matter

    cards = [read_front_matter(d) for d in (tmp_path / "ft" / "model", tmp_path / "cr" / "model", tmp_path / "bundle")]
    assert [c["base_model"] for c in cards] == [tiny_bert.name] * 3  # the chain leads back to the start model
    assert all(c["datasets"] == ["own data: reviews"] and c["labels"] == ["negative", "positive"] for c in cards)
    assert cards[1]["edgeprune"]["compression"]["prunable_encoder"] == pytest.approx(2.0, rel=0.05)
    assert cards[2]["library_name"] == "onnx" and cards[2]["edgeprune"]["measured"]["accuracy"] == ver["metric_artifact"]
    assert "README.md" in man["files"]


@pytest.mark.slow
def test_jsonl_end_to_end_finetune_eval_export_dense(tiny_bert: Path, reviews_jsonl: Path, tmp_path: Path):
    code, msg, _ = _cli(["finetune", "--model", str(tiny_bert), "--data", str(reviews_jsonl), "--out",
                         str(tmp_path / "ft"), "--max-steps", "6", "--lr", "1e-3", *FAST])
    assert code == 0, msg
    assert read_json(tmp_path / "ft" / "model" / "config.json")["id2label"] == {"0": "0", "1": "1"}
    code, msg, res = _cli(["eval", "--model", str(tmp_path / "ft"), "--data", str(reviews_jsonl), "--max-seq-len", "32"])
    assert code == 0 and "reviews dev (24 examples)" in res.output
    code, msg, _ = _cli(["export", str(tmp_path / "ft" / "model"), "--mode", "dense", "--data", str(reviews_jsonl),
                         "--task", "classification", "--seq-len", "32", "--verify-examples", "8",
                         "--out", str(tmp_path / "b")])
    assert code == 0, msg
    assert read_json(tmp_path / "b" / "verification.json")["passed"]


def test_regression_finetune_on_floats(tiny_bert: Path, tmp_path: Path, glue: Path):
    rows = [{"text": s, "score": float(lab) * 0.8 + 0.1 * (i % 2)} for i, (s, lab) in enumerate(_sst2_rows(glue, 40))]
    f = write_jsonl(tmp_path / "scores.jsonl", rows)
    code, msg, _ = _cli(["finetune", "--model", str(tiny_bert), "--data", str(f), "--label-column", "score",
                         "--out", str(tmp_path / "ft"), "--max-steps", "2", *FAST])
    assert code == 0, msg
    cfg = read_json(tmp_path / "ft" / "model" / "config.json")
    assert cfg["problem_type"] == "regression" and len(cfg["id2label"]) == 1
    assert read_json(tmp_path / "ft" / "metrics.json")["metric"] == "pearson"


@pytest.mark.slow
def test_export_stdout_is_results_only_and_stages_go_to_stderr(tiny_bert: Path, reviews_csv: Path, tmp_path: Path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "edgeprune", "export", str(tiny_bert), "--mode", "dense", "--data",
                        str(reviews_csv), "--label-column", "sentiment", "--task", "classification", "--seq-len", "32",
                        "--verify-examples", "8", "--out", str(tmp_path / "b")], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip().splitlines()
    assert out[0].startswith("wrote ") and out[1].startswith("verified on 8 reviews dev examples"), p.stdout
    assert len(out) == 2
    err = p.stderr.splitlines()
    assert err and all(line.startswith("[export]") for line in err), p.stderr  # no third-party lines
    assert any(line.startswith("[export] verify against PyTorch on dev examples 8/8") for line in err)
    assert (tmp_path / "b" / "config.json").is_file()
    assert read_json(tmp_path / "b" / "config.json")["id2label"] == {"0": "negative", "1": "positive"}
