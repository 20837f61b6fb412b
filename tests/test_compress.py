"""compress end to end on a tiny real checkpoint and real GLUE subsets; masks, resume and bad input."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import cli
from edgeprune.compress import CONFIG_VERSION, CompressConfig, compress
from edgeprune.errors import ConfigError
from edgeprune.io import read_json
from edgeprune.rundir import check_masks_match, open_run

FAST = ["--train-limit", "48", "--eval-limit", "24", "--batch-size", "8", "--max-seq-len", "48"]



def _matrices(model, cfg):
    """``(params, tilings, roles, layers)`` of the matrices ``cfg`` prunes (compress's own selection)."""
    from edgeprune.compress.cut import matrices

    m = matrices(model, cfg)
    return m.params, m.tilings, m.roles, m.layers


def cut_to_target(cfg, params, tilings, input_rms=None):
    from edgeprune.compress.cut import cut_to_target as cut

    return cut(cfg, params, tilings, input_rms)

def _cli(args: list[str]):
    from edgeprune.errors import EdgepruneError

    runner = CliRunner()
    res = runner.invoke(cli, args, standalone_mode=False, catch_exceptions=True)
    exc = res.exception
    code = exc.exit_code if isinstance(exc, EdgepruneError) else (0 if exc is None else 1)
    return code, (str(exc) if exc else res.output), res


@pytest.fixture(scope="module")
def finetuned(tiny_bert, glue, tmp_path_factory) -> Path:
    """A tiny BERT fine-tuned on an MRPC subset (a finetune run dir, so compress skips fine-tuning)."""
    from edgeprune.training import TrainConfig, finetune

    out = tmp_path_factory.mktemp("ft") / "run"
    finetune(str(tiny_bert), "mrpc", glue, out, TrainConfig(epochs=1, batch_size=8, max_seq_len=48, train_limit=48,
                                                            eval_limit=24, lr=1e-3))
    return out


def test_cli_end_to_end_matches_rundir_contract(finetuned, glue, tmp_path):
    out = tmp_path / "run"
    code, msg, res = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                           "4x", "--block", "16x1", "--epochs-reg", "1", "--epochs-retrain", "1", "--distill",
                           "--recipe", "paper", "--out", str(out), *FAST])
    assert code == 0, msg
    run = open_run(out)
    from edgeprune.models import load_model

    model, _ = load_model(run.model_dir)
    check_masks_match(run.masks, model)
    info = run.info
    assert info["task"] == "mrpc" and info["method"] == "reweighted-group-lasso"
    assert info["config_version"] == info["config"]["config_version"] == CONFIG_VERSION
    assert read_json(out / "compress_state" / "config.json")["config_version"] == CONFIG_VERSION
    assert info["block"] == [16, 1] and info["balanced"] is True and info["distill"] is True
    assert "finetune" not in info["phases"] and {"regularize", "prune", "retrain"} <= set(info["phases"])
    params = dict(model.named_parameters())
    assert len(run.masks) == 12  # 6 linears x 2 layers
    kept = sum(int(m.sum()) for m in run.masks.values())
    total = sum(m.numel() for m in run.masks.values())
    assert info["compression"]["prunable_encoder"]["compression"] == pytest.approx(total / kept)
    assert total / kept == pytest.approx(4.0)  # 64-row matrices, 16-row segments: 4x is exact
    assert info["compression"]["whole_model"]["compression"] < info["compression"]["whole_encoder"]["compression"] \
        < info["compression"]["prunable_encoder"]["compression"]
    for name, m in run.masks.items():
        assert m.dtype == torch.uint8
        assert (params[name].detach()[m == 0] == 0).all()
        rec = info["layers"][name]
        assert rec["kept_ratio"] == pytest.approx(float(m.float().mean()))
        assert rec["shape"] == list(m.shape) and rec["role"] in ("q", "k", "v", "attn_out", "ffn_in", "ffn_out")
        # balanced: every 16-row block row keeps the same number of columns
        per_row = m.reshape(m.shape[0] // 16, 16, m.shape[1])[:, 0, :].sum(dim=1)
        assert len(set(per_row.tolist())) == 1
    for key in ("dense", "pruned", "pruned_before_retrain"):
        assert 0 <= info["metrics"][key]["main"] <= 1
    assert (out / "kept_ratios.png").stat().st_size > 1000
    assert model.config.edgeprune_task == "mrpc"
    # rerunning into a finished run refuses; --resume returns it unchanged
    code, msg, _ = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--out", str(out)])
    assert code == 2 and "finished" in msg
    code, msg, _ = _cli(["compress", "--out", str(out), "--resume"])
    assert code == 0, msg


def test_pretrained_model_is_fine_tuned_first_and_magnitude_unstructured(tiny_bert, glue, tmp_path):
    cfg = CompressConfig(model=str(tiny_bert), task="rte", data_dir=str(glue), out=str(tmp_path / "r"),
                         compression=3.0, method="magnitude-unstructured", scope="global", epochs_finetune=1,
                         epochs_reg=1, epochs_retrain=0, train_limit=32, eval_limit=16, batch_size=8, max_seq_len=48)
    rec = compress(cfg)
    assert "finetune" in rec["phases"] and "regularize" not in rec["phases"]
    assert rec["block"] is None and rec["balanced"] is False
    assert rec["compression"]["prunable_encoder"]["compression"] == pytest.approx(3.0, rel=1e-4)
    assert rec["config"]["method"] == "magnitude-unstructured"


class _Interrupt(Exception):
    pass


def _interrupt_at(step: int):
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise _Interrupt()

    return Stop()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


@pytest.mark.parametrize("phase", ["regularize", "retrain"])
def test_resume_gives_the_same_result(finetuned, glue, tmp_path, phase):
    def cfg(out: Path) -> CompressConfig:
        return CompressConfig(model=str(finetuned), task="mrpc", data_dir=str(glue), out=str(out), compression=2.0,
                              block="8x8", epochs_reg=1, epochs_retrain=1, train_limit=48, eval_limit=16,
                              batch_size=8, max_seq_len=48, save_steps=2, reweight_every=3, lr=1e-3)

    ref = compress(cfg(tmp_path / "ref"))
    out = tmp_path / "cut"
    with pytest.raises(_Interrupt):
        compress(cfg(out), _callbacks={phase: [_interrupt_at(5)]})
    with pytest.raises(ConfigError, match="unfinished"):
        open_run(out)  # an interrupted run never looks complete
    with pytest.raises(ConfigError, match="--resume"):
        compress(cfg(out))
    got = compress(cfg(out), resume=True)
    assert got["metrics"]["pruned"]["main"] == pytest.approx(ref["metrics"]["pruned"]["main"])
    a, b = _weights(tmp_path / "ref"), _weights(out)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    if phase == "regularize":
        assert read_json(out / "compress_state" / "regularize" / "done.json")["reweighted_at_steps"] == [0, 3]


def test_masked_weights_stay_zero_with_adamw(finetuned, glue, tmp_path):
    from edgeprune.compress.trainer import MaskCallback, PruneTrainer
    from edgeprune.data import load_split
    from edgeprune.models import load_model
    from edgeprune.training import TrainConfig, make_trainer

    model, tok = load_model(finetuned / "model")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    names = [n for n, p in model.named_parameters() if n.endswith("dense.weight") or n.endswith("query.weight")]
    params = dict(model.named_parameters())
    masks = {n: torch.rand(params[n].shape, generator=g) > 0.5 for n in names}
    cb = MaskCallback({n: params[n] for n in names}, masks)
    train = load_split("mrpc", "train", glue, limit=32)
    cfg = TrainConfig(epochs=1, lr=1e-2, batch_size=8, max_seq_len=48, weight_decay=0.1, save_steps=1000)
    trainer = make_trainer(model, tok, "mrpc", train, None, cfg, tmp_path, trainer_cls=PruneTrainer, callbacks=[cb])
    trainer.train()
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    for n in names:
        p = params[n].detach()
        assert (p[~masks[n]] == 0).all(), n
        assert (p[masks[n]] != before[n][masks[n]]).any(), n  # kept weights did train
        st = opt.state[params[n]]
        assert (st["exp_avg"][~masks[n]] == 0).all() and (st["exp_avg_sq"][~masks[n]] == 0).all()


@pytest.mark.parametrize("args,needle", [
    (["--task", "nope"], "unknown GLUE task"),
    (["--model", "/no/such/model"], "is not a folder, an alias"),
    (["--target", "1000x"], "would prune every group"),
    (["--target", "0.5x"], "compression"),
    (["--block", "16y1"], "block shape"),
    (["--block-preset", "gpu"], "unknown block preset"),
    (["--data", "/no/such/glue"], "does not exist"),
    (["--layers", "nothing_matches_this"], "matches no linear"),
])
def test_bad_input_is_one_line_exit_2(finetuned, glue, tmp_path, args, needle):
    base = {"--model": str(finetuned), "--task": "mrpc", "--data": str(glue), "--target": "4x",
            "--block": "16x1"}
    it = iter(args)
    for k in it:
        base[k] = next(it)
    if "--block-preset" in base:
        del base["--block"]
    flat = [x for kv in base.items() for x in kv]
    out = tmp_path / "bad"
    code, msg, _ = _cli(["compress", "--recipe", "paper", *flat, "--out", str(out), *FAST])
    assert code == 2, msg
    assert needle in msg and "\n" not in msg
    assert not (out / "compression.json").exists() and not (out / "model").exists()


def test_cli_main_prints_one_line(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "edgeprune", "compress", "--model", "minilm-l6", "--task", "mrpc",
                        "--block", "0x1", "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: bad block shape") and len(p.stderr.strip().splitlines()) == 1


def test_non_tiling_block_is_padded_and_recorded(tiny_bert, glue):
    from edgeprune.models import load_model
    from edgeprune.prune.blocks import group_mask_of
    from edgeprune.prune.report import layer_records

    model, _ = load_model(tiny_bert)
    cfg = CompressConfig(model=str(tiny_bert), task="mrpc", data_dir=str(glue), out="unused", block="48x1",
                         compression=2.0)
    params, tilings, roles, layers = _matrices(model, cfg)
    res = cut_to_target(cfg, params, tilings)
    gms = {n: group_mask_of(m, tilings[n]) for n, m in res.masks.items()}
    recs = layer_records(res.masks, tilings, roles, layers, gms)
    q = "bert.encoder.layer.0.attention.self.query.weight"  # 64 rows: a 48-row block row and a partial 16-row one
    assert recs[q]["padded"] is True and recs[q]["block"] == [48, 1] and recs[q]["groups"] == 2 * 64
    assert len(recs[q]["kept_groups_per_block_row"]) == 1  # balanced across the partial block row too
    assert recs[q]["kept_ratio"] == pytest.approx(0.5)
    ffn_in = "bert.encoder.layer.0.intermediate.dense.weight"  # 128 rows: 48 + 48 + 32
    assert recs[ffn_in]["padded"] is True and recs[ffn_in]["groups"] == 3 * 64
    assert res.compression == pytest.approx(2.0)


def test_config_is_strict_versioned_and_resolved_once():
    cfg = CompressConfig(model="x", task="MRPC", data_dir=None, out="o", block="16x1", compression=4.0)
    d = cfg.to_dict()
    assert d["config_version"] == CONFIG_VERSION and CompressConfig.from_dict(d) == cfg
    old = {k: v for k, v in d.items() if k != "config_version"}  # saved before configs carried a version
    assert CompressConfig.from_dict(old) == cfg
    with pytest.raises(ConfigError, match=r"unknown compress setting\(s\) blokc; valid: .*block"):
        CompressConfig.from_dict({**d, "blokc": "8x8"})
    with pytest.raises(ConfigError, match="newer edgeprune"):
        CompressConfig.from_dict({**d, "config_version": CONFIG_VERSION + 1})
    plan = cfg.plan
    assert plan is cfg.plan and plan.task_key == "mrpc" and str(plan.block) == "16x1" and plan.balanced
    assert plan.keep == 0.25 and plan.cut == "oneshot" and plan.stage_targets == (4.0,)
    mk = lambda **kw: CompressConfig(model="x", task="mrpc", data_dir=None, out="o", **kw)  # noqa: E731
    assert mk(prune_schedule="gradual").plan.cut == "gradual"
    assert mk(stages="auto", compression=4.0).plan.stage_targets == (2.0, 3.0, 4.0)
    assert mk(reconstruct=True).plan.cut == mk(score="obs").plan.cut == "layerwise"
    tc = mk(epochs_reg=1.0, retrain_lr=1e-4, stage_steps=7)
    assert tc.training("regularize").lr == 2e-5 and tc.training("retrain").lr == 1e-4
    assert tc.training("stage").max_steps == 7 and tc.training("finetune").lr == tc.finetune_lr


def test_block_preset_resolution():
    mk = lambda **kw: CompressConfig(model="x", task="mrpc", data_dir=None, out="o", **kw)  # noqa: E731
    assert [str(s) for s in mk(block_preset="ort").resolved_block()] == ["128x1", "True"]
    assert [str(s) for s in mk(block_preset="tflite").resolved_block()] == ["allx1", "True"]
    assert [str(s) for s in mk(block_preset="paper").resolved_block()] == ["16x16", "False"]
    assert [str(s) for s in mk(block="16x16", balanced=True).resolved_block()] == ["16x16", "True"]
    assert str(mk(method="magnitude-unstructured", block="128x1").resolved_block()[0]) == "1x1"
    with pytest.raises(ConfigError, match="either --block or --block-preset"):
        mk(block="128x1", block_preset="ort")
    with pytest.raises(ConfigError, match="unknown --method"):
        mk(method="lasso")


@pytest.mark.parametrize("arch", ["tiny_roberta", "tiny_distilbert"])
@pytest.mark.parametrize("layers,count", [("all", 12), ("attention", 8), ("ffn_in,ffn_out", 4)])
def test_layer_presets_for_each_arch(arch, layers, count, request):
    from edgeprune.arch import get_arch
    from edgeprune.models import load_model
    from edgeprune.prune.report import compression_figures

    path = request.getfixturevalue(arch)
    model, _ = load_model(path)
    cfg = CompressConfig(model=str(path), task="mrpc", data_dir=None, out="unused", block="allx1", layers=layers,
                         compression=4.0)
    params, tilings, roles, _ = _matrices(model, cfg)
    assert len(params) == count and all(r is not None for r in roles.values())
    res = cut_to_target(cfg, params, tilings)
    figs = compression_figures(model, res.masks, get_arch(model.config.model_type).layer_regex)
    assert figs["prunable_encoder"]["compression"] == pytest.approx(4.0)
    assert figs["prunable_encoder"]["dense"] == sum(p.numel() for p in params.values())
    assert figs["whole_model"]["dense"] == sum(p.numel() for p in model.parameters())


def test_activation_score_calibration(tiny_bert, glue):
    from edgeprune.calibrate import input_rms
    from edgeprune.data import load_split
    from edgeprune.models import load_model

    model, tok = load_model(tiny_bert)
    cfg = CompressConfig(model=str(tiny_bert), task="mrpc", data_dir=str(glue), out="unused", block="16x1",
                         compression=4.0, score="activation")
    params, tilings, _, _ = _matrices(model, cfg)
    before = {n: p.detach().clone() for n, p in params.items()}
    rms = input_rms(model, tok, params, load_split("mrpc", "train", glue, limit=8), 48, batch_size=4)
    assert set(rms) == set(params)
    for n, r in rms.items():
        assert r.shape == (params[n].shape[1],) and (r > 0).all()
    res = cut_to_target(cfg, params, tilings, rms)
    assert res.compression == pytest.approx(4.0)
    assert all(torch.equal(before[n], p.detach()) for n, p in params.items())  # calibration changes nothing
    with pytest.raises(ConfigError, match="unknown --score"):
        CompressConfig(model="x", task="mrpc", data_dir=None, out="o", score="fisher")


def test_regularized_stage_is_reused_across_targets(finetuned, glue, tmp_path):
    """One regularized stage serves several targets: the second run prunes the first run's kept regularized model."""
    from edgeprune.models import load_model

    a, b = tmp_path / "a", tmp_path / "b"
    common = ["compress", "--recipe", "paper", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--block", "16x1",
              "--epochs-reg", "1", "--epochs-retrain", "0", *FAST]
    code, msg, _ = _cli([*common, "--target", "2x", "--keep-regularized", "--out", str(a)])
    assert code == 0, msg
    reg_model = a / "compress_state" / "regularize" / "model"
    assert (reg_model / "config.json").is_file()
    code, msg, _ = _cli([*common, "--target", "4x", "--regularized-from", str(a), "--out", str(b)])
    assert code == 0, msg
    info = read_json(b / "compression.json")
    assert info["regularized_from"] == str(a)
    assert "regularize" not in info["phases"] and info["phases"]["regularize_reused"] == \
        read_json(a / "compression.json")["phases"]["regularize"]
    # b's masks are the 4x hard prune of a's regularized weights
    model, _ = load_model(reg_model)
    cfg = CompressConfig.from_dict(read_json(b / "compress_state" / "config.json"))
    params, tilings, _, _ = _matrices(model, cfg)
    want = cut_to_target(cfg, params, tilings).masks
    got = open_run(b).masks
    assert all(torch.equal(want[n].bool(), got[n].bool()) for n in want)
    # a stage trained with other settings is refused in one line
    code, msg, _ = _cli([*common, "--target", "4x", "--penalty", "1e-3", "--regularized-from", str(a),
                         "--out", str(tmp_path / "c")])
    assert code == 2 and "penalty" in msg and "\n" not in msg
    code, msg, _ = _cli([*common, "--target", "4x", "--method", "magnitude-block", "--regularized-from", str(a),
                         "--out", str(tmp_path / "d")])
    assert code == 2 and "no regularized stage" in msg


def test_hidden_distill_loss_hand_computed():
    from edgeprune.compress.trainer import hidden_distill_loss

    emb = torch.zeros(1, 2, 2)
    s1 = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])  # second token is padding
    t1 = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    s2 = torch.tensor([[[2.0, 0.0], [9.0, 9.0]]])
    t2 = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 0]])
    # layer 1: mean((1-0)^2, 0) = 0.5; layer 2: mean(4, 0) = 2; embeddings ignored, padding ignored
    got = hidden_distill_loss((emb, s1, s2), (emb + 7, t1, t2), mask)
    assert float(got) == pytest.approx((0.5 + 2.0) / 2)
    with pytest.raises(ConfigError, match="needs --distill"):
        CompressConfig(model="x", task="mrpc", data_dir=None, out="o", distill_hidden=1.0)


def test_hidden_distillation_changes_retraining(finetuned, glue, tmp_path):
    """Same seed and data: only the hidden-state term differs, so the retrained weights must differ."""
    outs = {}
    for w in ("0", "10"):
        code, msg, _ = _cli(["compress", "--recipe", "paper", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                             "2x", "--block", "16x1", "--method", "magnitude-block", "--epochs-reg", "0",
                             "--epochs-retrain", "1", "--distill", "--distill-hidden", w, "--out",
                             str(tmp_path / w), *FAST])
        assert code == 0, msg
        assert read_json(tmp_path / w / "compression.json")["config"]["distill_hidden"] == float(w)
        outs[w] = _weights(tmp_path / w)
    assert any(not torch.equal(outs["0"][k], outs["10"][k]) for k in outs["0"])


def test_cubic_schedule_hand_computed():
    from edgeprune.prune.schedule import cubic_keep, default_every, update_steps

    assert cubic_keep(0, 10, 0.2) == 1.0
    assert cubic_keep(5, 10, 0.2) == pytest.approx(0.2 + 0.8 * 0.5 ** 3)  # 0.3
    assert cubic_keep(10, 10, 0.2) == cubic_keep(99, 10, 0.2) == 0.2
    assert cubic_keep(0, 0, 0.25) == 0.25  # no ramp: one-shot at the first step
    keeps = [cubic_keep(s, 20, 0.2) for s in range(21)]
    assert all(a >= b for a, b in zip(keeps, keeps[1:]))
    assert update_steps(10, 3) == [0, 3, 6, 9, 10] and update_steps(6, 3) == [0, 3, 6]
    assert default_every(25) == 3 and default_every(4) == 1
    with pytest.raises(ConfigError, match="prune-ramp"):
        CompressConfig(model="x", task="mrpc", data_dir=None, out="o", prune_schedule="gradual", prune_ramp=1.5)
    with pytest.raises(ConfigError, match="epochs-retrain"):
        CompressConfig(model="x", task="mrpc", data_dir=None, out="o", prune_schedule="gradual", epochs_retrain=0)


def test_gradual_masks_tighten_monotonically_to_the_exact_target(finetuned, glue, tmp_path):
    """Masks follow the cubic ramp: kept fractions never grow, a pruned group never returns, the end is exact."""
    from transformers import TrainerCallback

    from edgeprune.compress.trainer import GradualMaskCallback, PruneTrainer
    from edgeprune.data import load_split
    from edgeprune.models import load_model
    from edgeprune.prune.schedule import cubic_keep
    from edgeprune.training import TrainConfig, make_trainer

    model, tok = load_model(finetuned / "model")
    cfg = CompressConfig(model="x", task="mrpc", data_dir=None, out="o", block="16x1", compression=4.0)
    params, tilings, _, _ = _matrices(model, cfg)
    cb = GradualMaskCallback(params, tilings, 0.25, "uniform", True, ramp=0.75, every=2)
    seen: list[dict[str, torch.Tensor]] = []

    class Spy(TrainerCallback):  # after each step: the masks in force and the weights they zero
        def on_step_end(self, args, state, control, **kwargs):
            seen.append({n: m.clone() for n, m in cb.masks.items()})
            for n, m in cb.masks.items():
                assert (params[n].detach()[~m] == 0).all(), n

    train = load_split("mrpc", "train", glue, limit=48)
    tcfg = TrainConfig(epochs=2, lr=1e-3, batch_size=8, max_seq_len=48, save_steps=1000)  # 12 steps
    trainer = make_trainer(model, tok, "mrpc", train, None, tcfg, tmp_path, trainer_cls=PruneTrainer,
                           callbacks=[cb, Spy()])
    trainer.train()
    assert cb.ramp_steps == 9 and [s for s, _ in cb.history] == [0, 2, 4, 6, 8, 9]
    total = sum(m.numel() for m in seen[0].values())
    fracs = [sum(int(m.sum()) for m in ms.values()) / total for ms in seen]
    assert fracs[0] == 1.0 and fracs[-1] == pytest.approx(0.25)  # 64-row matrices, 16-row segments: exact
    assert all(a >= b for a, b in zip(fracs, fracs[1:])) and len(set(fracs)) >= 4
    for s, kept in cb.history:  # each update keeps the schedule's fraction, to one balanced slot
        assert kept == pytest.approx(cubic_keep(s, 9, 0.25), abs=1 / 32)
    for a, b in zip(seen, seen[1:]):
        assert all(bool((b[n] <= a[n]).all()) for n in a)  # nothing comes back
    for n, m in cb.masks.items():
        per_row = m.reshape(m.shape[0] // 16, 16, m.shape[1])[:, 0, :].sum(dim=1)
        assert len(set(per_row.tolist())) == 1  # still balanced


def test_gradual_compress_end_to_end_and_resume(finetuned, glue, tmp_path):
    """CLI run with --prune-schedule gradual; an interrupted run resumes to the same weights and masks."""
    args = ["compress", "--recipe", "paper", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target", "4x",
            "--block", "16x1", "--method", "magnitude-block", "--score", "activation", "--distill",
            "--prune-schedule", "gradual", "--prune-ramp", "0.5", "--epochs-reg", "1", "--epochs-retrain", "1",
            "--save-steps", "2", "--lr", "1e-3", *FAST]
    code, msg, _ = _cli([*args, "--out", str(tmp_path / "ref")])
    assert code == 0, msg
    info = read_json(tmp_path / "ref" / "compression.json")
    assert info["prune_schedule"] == "gradual" and info["metrics"]["pruned_before_retrain"] is None
    assert info["schedule"]["ramp_steps"] == 6 and info["schedule"]["updates"][-1][0] == 6  # 12 steps, ramp 0.5
    assert info["compression"]["prunable_encoder"]["compression"] == pytest.approx(4.0)
    run = open_run(tmp_path / "ref")
    w = _weights(tmp_path / "ref")
    for n, m in run.masks.items():
        assert (w[n][m == 0] == 0).all()
    out = tmp_path / "cut"
    cfg = CompressConfig.from_dict(read_json(tmp_path / "ref" / "compress_state" / "config.json") | {"out": str(out)})
    with pytest.raises(_Interrupt):
        compress(cfg, _callbacks={"retrain": [_interrupt_at(5)]})  # mid-ramp, after the step-4 checkpoint (last update: step 3)
    saved = torch.load(out / "compress_state" / "retrain" / "checkpoints" / "checkpoint-4" / "edgeprune_masks.pt")
    assert saved["last"] == 3 and len(saved["group_masks"]) == len(run.masks)
    code, msg, _ = _cli(["compress", "--out", str(out), "--resume"])
    assert code == 0, msg
    got = open_run(out)
    assert all(torch.equal(got.masks[n], run.masks[n]) for n in run.masks)
    b = _weights(out)
    for k in w:
        torch.testing.assert_close(w[k], b[k], atol=1e-5, rtol=1e-4)


def test_default_recipe_stages_cuts_reconstructs_and_records(finetuned, glue, tmp_path):
    """The default recipe (edgeprune): staged 2x -> 3x -> 4x cuts, each refitted and recorded, exact targets."""
    out = tmp_path / "staged"
    code, msg, _ = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                         "4x", "--block", "16x1", "--epochs-retrain", "1", "--stage-steps", "2", "--calib-examples",
                         "16", "--out", str(out), *FAST])
    assert code == 0, msg
    info = read_json(out / "compression.json")
    assert info["recipe"] == "edgeprune" and info["method"] == "magnitude-block"
    stages = info["stages"]
    assert [s["target"] for s in stages] == [2.0, 3.0, 4.0]
    for s in stages:
        assert s["compression"] == pytest.approx(s["target"], rel=0.02)  # 16-row tiles, one slot per matrix
        # the least-squares refit never does worse than the plain cut on the calibration inputs
        assert s["output_error_refit"] <= s["output_error_cut"] + 1e-9
        assert "metrics_after_cut" in s
    assert stages[0]["steps"] == 2 and stages[1]["steps"] == 2 and "steps" not in stages[2]
    # matrices are cut in forward order, q/k/v (one input) together: never grouped by a reused pointer
    order = [m["name"].split(".", 4)[-1].removesuffix(".weight") for m in stages[0]["matrices"]]
    assert order == ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                     "intermediate.dense", "output.dense"] * 2
    assert info["steps"] >= 4
    # masks only shrink from stage to stage (no group comes back)
    from edgeprune.rundir import load_masks

    prev = None
    for t in ("2x", "3x", "4x"):
        m = load_masks(out / "compress_state" / "stages" / t / "model" / "masks.safetensors")
        if prev is not None:
            for n in m:
                assert not (m[n].bool() & ~prev[n].bool()).any()
        prev = m
    final = load_masks(out / "model" / "masks.safetensors")
    assert all(torch.equal(final[n].bool(), prev[n].bool()) for n in final)


def test_proximal_regularizer_zeroes_groups_and_is_recorded(finetuned, glue, tmp_path):
    out = tmp_path / "prox"
    code, msg, _ = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                         "2x", "--block", "16x1", "--recipe", "paper", "--penalty", "50", "--epochs-reg", "1",
                         "--epochs-retrain", "1", "--lr", "1e-3", "--out", str(out), *FAST])
    assert code == 0, msg
    reg = read_json(out / "compression.json")["regularize"]
    assert reg["form"] == "proximal" and reg["R_end"] < reg["R_start"]
    assert reg["zero_groups"] > 0 and reg["kept_energy_at_target_end"] > reg["kept_energy_at_target_start"]
    assert 0 <= reg["metrics"]["main"] <= 1


@pytest.mark.parametrize("extra, needle", [
    (["--recipe", "nope"], "unknown --recipe"),
    (["--stages", "2,9"], "goes past the target"),
    (["--stages", "3,2"], "strictly increasing"),
    (["--calib-examples", "100000"], "larger than the training set"),
])
def test_bad_recipe_inputs_one_line_exit_2(finetuned, glue, tmp_path, extra, needle):
    out = tmp_path / "bad"
    code, msg, _ = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                         "4x", "--block", "16x1", "--out", str(out), *FAST, *extra])
    assert code == 2 and needle in msg and "\n" not in msg.strip()
    assert not (out / "compression.json").exists()


def test_sensitivity_allocation_keeps_the_total_and_reports_per_matrix(finetuned, glue, tmp_path):
    out = tmp_path / "alloc"
    code, msg, _ = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                         "2x", "--block", "16x1", "--stages", "none", "--allocation", "sensitivity",
                         "--epochs-retrain", "1", "--calib-examples", "16", "--out", str(out), *FAST])
    assert code == 0, msg
    info = read_json(out / "compression.json")
    st = info["stages"][-1]
    assert st["allocation"] == "sensitivity" and len(st["allocation_damage"]) == 12
    assert st["compression"] == pytest.approx(2.0, rel=0.1)
    ratios = {n: r["kept_ratio"] for n, r in info["layers"].items()}
    assert max(ratios.values()) - min(ratios.values()) > 0.05  # not uniform any more


def test_overwrite_rule(finetuned, glue, tmp_path):
    """A finished run is replaced only with overwrite, and only once the new run's inputs are good;
    a folder compress did not write is never replaced."""
    from dataclasses import replace

    out = tmp_path / "run"
    out.mkdir()
    (out / "compression.json").write_text('{"task": "old"}')
    cfg = CompressConfig(model=str(finetuned), task="mrpc", data_dir=str(tmp_path / "no-data"), out=str(out),
                         compression=2.0, block="16x1", method="magnitude-block", epochs_reg=0, epochs_retrain=0.5,
                         train_limit=16, eval_limit=8, batch_size=8, max_seq_len=32)
    with pytest.raises(ConfigError, match="already holds a finished compress run; pass --overwrite"):
        compress(cfg)
    with pytest.raises(Exception, match="does not exist"):
        compress(cfg, overwrite=True)  # bad data: the old run is still there
    assert read_json(out / "compression.json") == {"task": "old"}
    with pytest.raises(ConfigError, match="contradict"):
        compress(cfg, resume=True, overwrite=True)
    rec = compress(replace(cfg, data_dir=str(glue)), overwrite=True)
    assert read_json(out / "compression.json")["task"] == rec["task"] == "mrpc"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is not empty and holds no compress run"):
        compress(replace(cfg, out=str(mine)), overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_augmented_distillation_labels_copies_by_the_teacher_and_keeps_the_step_count(finetuned, glue, tmp_path):
    """--augment 2: 2 perturbed copies per training example, labelled by the dense teacher, saved for resume;
    the distillation phases train on them with the same number of steps as without."""
    from edgeprune.data.glue import GlueExample
    from edgeprune.models import load_model
    from edgeprune.training import predict

    out = tmp_path / "aug"
    code, msg, _ = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                         "3x", "--block", "16x1", "--epochs-retrain", "1", "--stage-steps", "2", "--calib-examples",
                         "16", "--augment", "2", "--out", str(out), *FAST])
    assert code == 0, msg
    aug = read_json(out / "compress_state" / "augment.json")
    assert aug["copies"] == 2 and aug["n"] == 48 and len(aug["examples"]) == 96
    teacher, tok = load_model(finetuned / "model", num_labels=2)
    ex = [GlueExample(a, b, y) for a, b, y in aug["examples"][:16]]
    assert [e.label for e in ex] == [int(v.argmax()) for v in predict(teacher, tok, ex, max_seq_len=48)]
    info = read_json(out / "compression.json")
    assert info["config"]["augment"] == 2
    assert info["stages"][0]["steps"] == 2
    assert read_json(out / "compress_state" / "retrain" / "done.json")["steps"] == 6  # 1 epoch of 48 at batch 8


def test_units_prune_whole_heads_and_ffn_units_and_shrink_on_export(finetuned, glue, tmp_path):
    """--units: attn_out keeps whole heads, ffn_out whole units; Q/K/V and FFN-input rows follow exactly;
    the export's structural shrink then removes them (a smaller dense model)."""
    from edgeprune.rundir import load_masks

    out = tmp_path / "units"
    code, msg, _ = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                         "2x", "--units", "--allocation", "uniform", "--epochs-retrain", "1", "--stage-steps", "2",
                         "--calib-examples", "16",
                         "--out", str(out), *FAST])
    assert code == 0, msg
    info = read_json(out / "compression.json")
    assert info["units"] is True and info["block_str"] == "heads+units"
    assert info["compression"]["prunable_encoder"]["compression"] == pytest.approx(2.0, rel=0.02)
    masks = {n: m.bool() for n, m in load_masks(out / "model" / "masks.safetensors").items()}
    heads = 4
    for li in range(2):
        p = f"bert.encoder.layer.{li}."
        out_cols = masks[p + "attention.output.dense.weight"]
        cols = out_cols.any(dim=0)
        assert torch.equal(out_cols, cols[None, :].expand_as(out_cols))  # whole columns
        per_head = cols.view(heads, -1)
        assert torch.equal(per_head.all(dim=1), per_head.any(dim=1))  # whole heads
        assert int(per_head.all(dim=1).sum()) == heads // 2
        for r in ("query", "key", "value"):
            m = masks[p + f"attention.self.{r}.weight"]
            assert torch.equal(m, cols[:, None].expand_as(m))
        ffn_cols = masks[p + "output.dense.weight"].any(dim=0)
        assert int(ffn_cols.sum()) == ffn_cols.numel() // 2
        m = masks[p + "intermediate.dense.weight"]
        assert torch.equal(m, ffn_cols[:, None].expand_as(m))
    hf = tmp_path / "hf"
    code, msg, _ = _cli(["export", str(out), "--format", "hf", "--data", str(glue), "--verify-examples", "16",
                         "--out", str(hf)])
    assert code == 0, msg
    cfg = read_json(next(hf.rglob("config.json")))
    assert cfg["intermediate_size"] == 128 // 2 or all(len(v) == heads // 2 for v in cfg["pruned_heads"].values())


@pytest.mark.parametrize("extra, needle", [
    (["--units", "--block", "16x1"], "takes no --block"),
    (["--units", "--recipe", "paper"], "--units needs --method magnitude-block"),
    (["--units", "--layers", "ffn"], "takes no --layers"),
])
def test_units_bad_combinations_are_one_line(finetuned, glue, tmp_path, extra, needle):
    out = tmp_path / "bad"
    code, msg, _ = _cli(["compress", "--model", str(finetuned), "--task", "mrpc", "--data", str(glue), "--target",
                         "2x", *extra, "--out", str(out), *FAST])
    assert code == 2 and needle in msg and "\n" not in msg.strip(), msg
    assert not out.exists() or not (out / "compression.json").exists()
