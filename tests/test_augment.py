"""Teacher-labelled augmentation text: seeded, label-free until a teacher labels it, never empty."""
import random

import pytest

from edgeprune.compress import CompressConfig
from edgeprune.data.augment import augment, perturb, teacher_label, vocabulary
from edgeprune.data.glue import GlueExample
from edgeprune.errors import ConfigError

EX = [GlueExample("the cat sat on the mat", None, 1), GlueExample("dogs bark", None, 0)]
PAIRS = [GlueExample("a man is playing a guitar", "a person plays music", 3.2)]


def test_vocabulary_is_the_distinct_words_in_order():
    assert vocabulary(EX) == ["the", "cat", "sat", "on", "mat", "dogs", "bark"]


def test_augment_is_seeded_and_changes_text():
    a, b = augment(EX, 3, seed=7), augment(EX, 3, seed=7)
    assert a == b and len(a) == 6
    assert augment(EX, 3, seed=8) != a
    assert all(e.label == -1 for e in a)
    assert any(e.text_a not in {x.text_a for x in EX} for e in a)


def test_perturb_changes_about_rate_of_the_words_and_never_empties():
    rng = random.Random(0)
    words = " ".join(f"w{i}" for i in range(20))
    outs = [perturb(words, rng, ["x"], rate=0.1) for _ in range(50)]
    assert all(outs) and any(o != words for o in outs)
    for o in outs:  # two operations on 20 words: length changes by at most 2
        assert abs(len(o.split()) - 20) <= 2
    assert all(perturb("one", random.Random(i), ["x"]).split() for i in range(20))


def test_pairs_keep_a_second_text():
    out = augment(PAIRS, 5, seed=1)
    assert all(e.text_b for e in out)
    assert any(e.text_b != PAIRS[0].text_b or e.text_a != PAIRS[0].text_a for e in out)


def test_teacher_label_uses_the_teachers_prediction(tiny_bert):
    from edgeprune.models import load_model
    from edgeprune.training import predict

    model, tok = load_model(tiny_bert, num_labels=2)
    out = teacher_label(model, tok, augment(EX, 2, seed=0), regression=False)
    logits = predict(model, tok, out)
    assert [e.label for e in out] == [int(v.argmax()) for v in logits]


def test_augment_needs_distill_and_valid_numbers(tmp_path):
    base = dict(model="m", task="sst2", data_dir=None, out=str(tmp_path))
    with pytest.raises(ConfigError, match="needs --distill"):
        CompressConfig(**base, augment=2)
    with pytest.raises(ConfigError, match="--augment"):
        CompressConfig(**base, augment=-1, distill=True)
    with pytest.raises(ConfigError, match="--augment-rate"):
        CompressConfig(**base, augment=1, distill=True, augment_rate=0)
