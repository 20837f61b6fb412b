"""Data-parallel fine-tuning and compress: 2 CPU ranks (gloo) on localhost through torchrun end identical."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from edgeprune.io import read_json

WORKER = textwrap.dedent('''
    import hashlib, json, os, sys
    import torch
    from transformers import TrainerCallback
    from edgeprune.training import TrainConfig, finetune

    ckpt, glue, out = sys.argv[1:4]
    rank = int(os.environ["RANK"])

    def digest(model):
        h = hashlib.sha256()
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode()); h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    class Record(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            self.info = {"rank": rank, "world_size": args.world_size, "backend": str(torch.distributed.get_backend()),
                         "initial": digest(model)}
        def on_train_end(self, args, state, control, model=None, **kw):
            self.info.update(final=digest(model), global_step=state.global_step)
            with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
                json.dump(self.info, f)

    cfg = TrainConfig(max_steps=4, lr=1e-3, batch_size=8, max_seq_len=48, train_limit=64, eval_limit=32,
                      logging_steps=2, warmup_ratio=0.0)
    finetune(ckpt, "mrpc", glue, os.path.join(out, "run"), cfg, callbacks=[Record()])
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_2_ranks(worker: str, ckpt: Path, glue: Path, tmp_path: Path) -> None:
    """Run ``worker`` (argv: checkpoint, GLUE dir, output dir) on 2 CPU ranks (gloo) through torchrun."""
    script = tmp_path / "worker.py"
    script.write_text(worker)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(script), str(ckpt), str(glue), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_cpu_ranks_end_with_identical_weights(tiny_bert: Path, glue: Path, tmp_path: Path):
    _torchrun_2_ranks(WORKER, tiny_bert, glue, tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r, info in enumerate(ranks):
        assert info["rank"] == r and info["world_size"] == 2 and info["backend"] == "gloo"
        assert info["global_step"] == 4
        assert info["final"] != info["initial"]  # training changed the weights
    assert ranks[0]["initial"] == ranks[1]["initial"]
    assert ranks[0]["final"] == ranks[1]["final"]  # DDP kept the replicas in lockstep
    metrics = read_json(tmp_path / "run" / "metrics.json")  # written once, by rank 0, with gathered dev metrics
    assert metrics["num_examples"] == 32 and 0.0 <= metrics["main"] <= 1.0
    # 2 ranks x batch 8 x 4 steps = 64 examples: one pass over the 64-example subset
    assert metrics["train"]["epochs"] == 1.0


COMPRESS_WORKER = textwrap.dedent('''
    import hashlib, json, os, sys
    import torch
    from transformers import TrainerCallback
    from edgeprune.compress import CompressConfig, compress

    ckpt, glue, out = sys.argv[1:4]
    rank = int(os.environ["RANK"])

    class Record(TrainerCallback):  # final retrained weights of this rank's replica
        def on_train_end(self, args, state, control, model=None, **kw):
            h = hashlib.sha256()
            for name, t in sorted(model.state_dict().items()):
                h.update(name.encode()); h.update(t.detach().cpu().contiguous().numpy().tobytes())
            with open(os.path.join(out, f"compress_rank{rank}.json"), "w") as f:
                json.dump({"final": h.hexdigest(), "world_size": args.world_size, "steps": state.global_step}, f)

    cfg = CompressConfig(model=ckpt, task="mrpc", data_dir=glue, out=os.path.join(out, "run"), compression=4.0,
                         block="16x1", epochs_finetune=1, epochs_reg=1, epochs_retrain=1, train_limit=32,
                         eval_limit=16, batch_size=4, max_seq_len=48, lr=1e-3, prune_schedule="gradual",
                         score="activation", distill=True)
    compress(cfg, _callbacks={"retrain": [Record()]})
''')


def test_compress_under_torchrun_keeps_ranks_and_masks_in_lockstep(tiny_bert: Path, glue: Path, tmp_path: Path):
    """Fine-tune, regularize and gradually prune on 2 ranks: both replicas end identical, rank 0 writes the run."""
    _torchrun_2_ranks(COMPRESS_WORKER, tiny_bert, glue, tmp_path)
    ranks = [json.loads((tmp_path / f"compress_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2 and ranks[0]["steps"] == 4  # 32 examples / (2 ranks x 4)
    assert ranks[0]["final"] == ranks[1]["final"]  # the same masks chosen on both ranks, weights in lockstep
    info = read_json(tmp_path / "run" / "compression.json")
    assert info["phases"].keys() >= {"finetune", "regularize", "prune", "retrain"}
    assert abs(info["compression"]["prunable_encoder"]["compression"] - 4.0) < 1e-6
    assert info["schedule"]["updates"][-1][1] == 0.25
