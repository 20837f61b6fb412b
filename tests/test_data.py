"""GLUE loaders: all nine tasks on small hand-written files, the real shared files, and malformed input."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from edgeprune.data import TASKS, get_task, load_split
from edgeprune.errors import DataError


def _write(path: Path, rows: list[list[str]], bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join("\t".join(r) + "\n" for r in rows)
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


MNLI_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]


def _mnli_row(i: int, s1: str, s2: str, gold: str) -> list[str]:
    return [str(i), "p", "q", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, gold, gold]


# task key -> (folder, {file: rows}, split, expected [(text_a, text_b, label)])
CASES = {
    "cola": ("CoLA", {"dev.tsv": [["gj04", "1", "", "The cat sat."], ["gj04", "0", "*", "Cat the sat."]]},
             "dev", [("The cat sat.", None, 1), ("Cat the sat.", None, 0)]),
    "sst2": ("SST-2", {"train.tsv": [["sentence", "label"], ["a fine film", "1"], ["dull and long", "0"]]},
             "train", [("a fine film", None, 1), ("dull and long", None, 0)]),
    "mrpc": ("MRPC", {"dev.tsv": [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                                  ["1", "11", "12", "He left early.", "He went early."],
                                  ["0", "13", "14", "It rains.", "The sun shines."]]},
             "dev", [("He left early.", "He went early.", 1), ("It rains.", "The sun shines.", 0)]),
    "stsb": ("STS-B", {"dev.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                                    "sentence1", "sentence2", "score"],
                                   ["0", "main-news", "f", "2012", "0000", "none", "none", "A dog runs.",
                                    "A dog is running.", "4.750"]]},
             "dev", [("A dog runs.", "A dog is running.", 4.75)]),
    "qqp": ("QQP", {"train.tsv": [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                                  ["0", "1", "2", "How do I cook rice?", "What is the way to cook rice?", "1"],
                                  ["1", "3", "4", "Why is the sky blue?", "Where is Paris?", "0"]]},
            "train", [("How do I cook rice?", "What is the way to cook rice?", 1),
                      ("Why is the sky blue?", "Where is Paris?", 0)]),
    "mnli": ("MNLI", {"dev_matched.tsv": [MNLI_HEADER, _mnli_row(0, "A man sleeps.", "A person rests.", "entailment"),
                                          _mnli_row(1, "A man sleeps.", "A man runs.", "contradiction")],
                      "dev_mismatched.tsv": [MNLI_HEADER, _mnli_row(0, "It is red.", "It is a car.", "neutral")]},
             "dev", [("A man sleeps.", "A person rests.", 1), ("A man sleeps.", "A man runs.", 0)]),
    "mnli-mm": ("MNLI", {"dev_matched.tsv": [MNLI_HEADER, _mnli_row(0, "x", "y", "entailment")],
                         "dev_mismatched.tsv": [MNLI_HEADER, _mnli_row(0, "It is red.", "It is a car.", "neutral")]},
                "dev", [("It is red.", "It is a car.", 2)]),
    "qnli": ("QNLI", {"dev.tsv": [["index", "question", "sentence", "label"],
                                  ["0", "Who wrote it?", "It was written by Ann.", "entailment"],
                                  ["1", "When?", "Nobody knows why.", "not_entailment"]]},
             "dev", [("Who wrote it?", "It was written by Ann.", 0), ("When?", "Nobody knows why.", 1)]),
    "rte": ("RTE", {"train.tsv": [["index", "sentence1", "sentence2", "label"],
                                  ["0", "Ann bought a car.", "Ann owns a car.", "entailment"],
                                  ["1", "Ann sold a car.", "Ann is rich.", "not_entailment"]]},
            "train", [("Ann bought a car.", "Ann owns a car.", 0), ("Ann sold a car.", "Ann is rich.", 1)]),
    "wnli": ("WNLI", {"dev.tsv": [["index", "sentence1", "sentence2", "label"],
                                  ["0", "The cup fell because it was full.", "The cup was full.", "1"]]},
             "dev", [("The cup fell because it was full.", "The cup was full.", 1)]),
}


def test_cases_cover_all_nine_tasks_and_mnli_mismatched():
    assert set(CASES) == set(TASKS)


@pytest.mark.parametrize("key", sorted(CASES))
def test_loader_reads_hand_written_files(tmp_path: Path, key: str):
    folder, files, split, expected = CASES[key]
    for name, rows in files.items():
        _write(tmp_path / folder / name, rows, bom=(key == "mrpc"))
    examples = load_split(key, split, tmp_path)
    got = [(e.text_a, e.text_b, e.label) for e in examples]
    assert got == expected
    spec = get_task(key)
    for e in examples:
        assert isinstance(e.label, float if spec.is_regression else int)


def test_data_dir_may_point_at_the_task_folder(tmp_path: Path):
    _write(tmp_path / "train.tsv", [["sentence", "label"], ["good", "1"]])
    assert [e.label for e in load_split("sst2", "train", tmp_path)] == [1]


def test_task_names_and_aliases():
    assert get_task("SST-2") is get_task("sst2")
    assert get_task("MNLI_mismatched").dev_file == "dev_mismatched.tsv"
    assert get_task("STS-B").is_regression and get_task("stsb").num_labels == 1
    assert get_task("mnli").num_labels == 3
    with pytest.raises(DataError, match="unknown GLUE task 'sst3'.*cola"):
        get_task("sst3")


def _raw_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize("key,folder,n_dev", [("sst2", "SST-2", 872), ("mrpc", "MRPC", 408), ("stsb", "STS-B", 1500),
                                              ("cola", "CoLA", 1301), ("rte", "RTE", 363), ("wnli", "WNLI", 117)])
def test_real_dev_sets_load_completely(glue: Path, key: str, folder: str, n_dev: int):
    examples = load_split(key, "dev", glue)
    assert len(examples) == n_dev  # row counts from ../shared/data/README.md
    spec = get_task(key)
    rows = _raw_rows(glue / folder / "dev.tsv")
    first = rows[1] if spec.header else rows[0]
    header = {n: i for i, n in enumerate(rows[0])} if spec.header else {}
    idx = header[spec.text_a] if spec.header else spec.text_a
    assert examples[0].text_a == first[idx]


def test_real_mrpc_first_row_by_hand(glue: Path):
    ex = load_split("mrpc", "dev", glue, limit=2)
    assert len(ex) == 2
    assert ex[0].label == 1 and ex[0].text_a.startswith("He said the foodservice pie business")
    assert ex[1].label == 0 and ex[1].text_a.startswith("Magnarelli said Racicot")


def test_real_stsb_scores_are_floats_in_range(glue: Path):
    ex = load_split("stsb", "dev", glue)
    assert ex[0].label == 5.0 and ex[0].text_a == "A man with a hard hat is dancing."
    assert all(0.0 <= e.label <= 5.0 for e in ex)


def test_limit_takes_the_first_examples(glue: Path):
    full = load_split("rte", "train", glue)
    assert load_split("rte", "train", glue, limit=5) == full[:5]


def test_too_few_fields_names_file_and_line(tmp_path: Path):
    path = _write(tmp_path / "RTE" / "dev.tsv", [["index", "sentence1", "sentence2", "label"],
                                                 ["0", "a", "b", "entailment"], ["1", "only one sentence"]])
    with pytest.raises(DataError, match=rf"{path}:3: expected at least"):
        load_split("rte", "dev", tmp_path)


def test_bad_label_names_file_and_line(tmp_path: Path):
    path = _write(tmp_path / "SST-2" / "dev.tsv", [["sentence", "label"], ["fine", "1"], ["bad", "1"], ["x", "2"]])
    with pytest.raises(DataError, match=rf"{path}:4: label '2' is not one of 0, 1"):
        load_split("sst2", "dev", tmp_path)


def test_non_numeric_score_names_file_and_line(tmp_path: Path):
    rows = CASES["stsb"][1]["dev.tsv"] + [["1", "g", "f", "y", "o", "s", "s", "a", "b", "high"]]
    path = _write(tmp_path / "STS-B" / "dev.tsv", rows)
    with pytest.raises(DataError, match=rf"{path}:3: label 'high' is not a number"):
        load_split("stsb", "dev", tmp_path)


def test_missing_header_column_names_file(tmp_path: Path):
    path = _write(tmp_path / "QNLI" / "dev.tsv", [["index", "question", "text", "label"], ["0", "q", "s", "entailment"]])
    with pytest.raises(DataError, match=rf"{path}:1: header lacks column 'sentence'"):
        load_split("qnli", "dev", tmp_path)


def test_missing_files_and_folders(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        load_split("mrpc", "dev", tmp_path / "nope")
    with pytest.raises(DataError, match="no MRPC/ folder"):
        load_split("mrpc", "dev", tmp_path)
    (tmp_path / "MRPC").mkdir()
    with pytest.raises(DataError, match="missing data file .*MRPC/dev.tsv"):
        load_split("mrpc", "dev", tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        load_split("mrpc", "test", tmp_path)


def test_header_only_file_is_an_error(tmp_path: Path):
    path = _write(tmp_path / "SST-2" / "dev.tsv", [["sentence", "label"]])
    with pytest.raises(DataError, match=f"{path}: no examples"):
        load_split("sst2", "dev", tmp_path)


def test_embedded_demo_set_is_balanced_and_disjoint():
    from edgeprune.commands.demo import demo_data_dir

    train = load_split("sst2", "train", demo_data_dir())
    dev = load_split("sst2", "dev", demo_data_dir())
    assert len(train) >= 150 and len(dev) >= 50
    for split in (train, dev):
        assert sum(e.label for e in split) * 2 == len(split)  # as many positive as negative sentences
    texts_train = {e.text_a for e in train}
    assert len(texts_train) == len(train)
    assert not texts_train & {e.text_a for e in dev}


def test_seeded_train_subset_is_random_reproducible_and_not_the_first_rows(glue):
    """--train-limit draws a seeded sample: STS-B's first rows are one genre, so the first N would bias it."""
    from edgeprune.data import load_split
    from edgeprune.data.glue import holdout_split

    full = load_split("stsb", "train", glue)
    a = load_split("stsb", "train", glue, limit=200, seed=42)
    b = load_split("stsb", "train", glue, limit=200, seed=42)
    c = load_split("stsb", "train", glue, limit=200, seed=7)
    first = load_split("stsb", "train", glue, limit=200)
    assert a == b and len(a) == 200
    assert a != c and a != first and first == full[:200]
    assert all(e in full for e in a)
    rest, held = holdout_split(full, 0.1, 0)
    assert len(held) == round(0.1 * len(full)) and len(rest) + len(held) == len(full)
    assert holdout_split(full, 0.1, 0) == (rest, held)
