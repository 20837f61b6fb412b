"""Child of ``bench.litert_torch_ab``: convert the PyTorch packed encoder with litert-torch (its own venv).

Runs in ``.venv-litert-torch`` (litert-torch 0.10 + torch 2.13 + ai-edge-litert 2.3, no TensorFlow),
because litert-torch's dependencies (torchao, jax, litert-converter, kagglehub) are not in the
project's pins. Builds the same plan the TF export used (``--plan``: its report; else the fewest
multiply-adds), checks the PyTorch module against the masked HF model on the parent's feeds, then
converts in one dtype and writes a JSON record (never raises: a failure is the record).

    .venv-litert-torch/bin/python -m bench.litert_torch_convert RUN_DIR OUT.tflite REC.json \
        --feeds FEEDS.npz --seq-len 128 --dtype fp32|int8-dynamic|int8-dynamic-fc [--plan export_report.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


DTYPES = ("fp32", "int8-dynamic", "int8-dynamic-fc")


def quant_config(dtype: str):
    """litert-torch's own int8 dynamic-range recipe (ai-edge-quantizer, int8 channelwise weights, every
    supported op); ``int8-dynamic-fc`` is quantized after conversion instead (:func:`quantize_fc_only`)."""
    if dtype in ("fp32", "int8-dynamic-fc"):
        return None
    if dtype == "int8-dynamic":
        from litert_torch.generative.quantize import quant_recipes

        return quant_recipes.full_dynamic_recipe()
    raise SystemExit(f"unsupported dtype {dtype!r}")


def quantize_fc_only(buf: bytes) -> bytes:
    """The same int8 dynamic-range channelwise config as ``full_dynamic_recipe``, on FULLY_CONNECTED and
    EMBEDDING_LOOKUP only (the ops TFLiteConverter's dynamic-range mode quantizes here).

    The stock recipe also quantizes BATCH_MATMUL operands; in ``segments_t`` the constant weight is the
    LHS, and LiteRT's BATCH_MATMUL has no int8-LHS / float-RHS kernel (it refuses the model at invoke).
    """
    from ai_edge_quantizer import quantizer
    from litert_torch.generative.quantize import quant_recipe_utils
    from litert_torch.quantize import translate_recipe as tr

    rm = quantizer.recipe_manager.RecipeManager()
    for op in (quantizer.qtyping.TFLOperationName.FULLY_CONNECTED, quantizer.qtyping.TFLOperationName.EMBEDDING_LOOKUP):
        tr._set_quant_config(rm, quant_recipe_utils.create_layer_quant_dynamic(), ".*", op)
    return bytes(tr.quantize_model(buf, rm.get_quantization_recipe()))


def module_logits(module, feeds: dict[str, np.ndarray], names: list[str], batch: int) -> np.ndarray:
    import torch

    n = feeds[names[0]].shape[0]
    out = []
    with torch.inference_mode():
        for s in range(0, n - n % batch, batch):
            out.append(module(*[torch.from_numpy(feeds[k][s:s + batch].astype(np.int32)) for k in names])["logits"])
    return torch.cat(out).numpy()


def convert(a: argparse.Namespace) -> dict:
    import litert_torch
    import torch

    from bench.litert_torch_model import build_module, replay_chooser
    from edgeprune.exporters import tf_graph as tg
    from edgeprune.exporters.prepared import prepare

    rec: dict = {"dtype": a.dtype, "litert_torch": getattr(litert_torch, "__version__", "?"), "torch": torch.__version__}
    torch.set_num_threads(1)
    p = prepare(Path(a.run_dir), a.task)
    w = tg.extract(p.model, p.masks, p.tokenizer)
    names = tg.input_names(w)
    chooser = tg.choose_fewest_macs
    if a.plan:
        chooser = replay_chooser(json.loads(Path(a.plan).read_text())["structure"]["layers"])
        rec["plan"] = f"replayed from {a.plan}"
    plans = tg.plan_model(w, "packed" if p.masks else "dense", chooser)
    rec["formulations"] = tg.plan_summary(plans)["formulations"]
    module = build_module(w, plans, a.seq_len, a.batch)
    if a.feeds:
        with np.load(a.feeds) as z:
            feeds, ref = {k: z[k] for k in names}, z["logits"]
        got = module_logits(module, feeds, names, a.batch)
        rec["torch_module_vs_hf_max_abs"] = float(np.abs(got - ref[: len(got)]).max())
    sample = {k: torch.ones(a.batch, a.seq_len, dtype=torch.int32) for k in names}
    t0 = time.perf_counter()
    edge = litert_torch.convert(module, sample_kwargs=sample, quant_config=quant_config(a.dtype))
    rec["convert_s"] = time.perf_counter() - t0
    edge.export(a.out)
    if a.dtype == "int8-dynamic-fc":
        Path(a.out).write_bytes(quantize_fc_only(Path(a.out).read_bytes()))
        rec["convert_s"] = time.perf_counter() - t0
    rec["file_bytes"] = Path(a.out).stat().st_size
    return rec


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="litert_torch_convert")
    ap.add_argument("run_dir")
    ap.add_argument("out")
    ap.add_argument("record")
    ap.add_argument("--feeds", help="npz with the input arrays and the HF logits (key 'logits')")
    ap.add_argument("--plan", help="the TF export's export_report.json: replay its per-linear formulations")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="fp32", choices=DTYPES)
    a = ap.parse_args(argv)
    try:
        rec = convert(a)
        rec["ok"] = True
    except BaseException as e:  # the record is the result, whatever failed
        rec = {"ok": False, "dtype": a.dtype, "error": f"{type(e).__name__}: {str(e)[:2000]}",
               "traceback": traceback.format_exc()[-4000:]}
    Path(a.record).write_text(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
