"""Load an exported ONNX bundle the way a user of Hugging Face optimum does, run sentences, write JSON.

Runs under ``.venv-optimum/bin/python`` (scripts/setup-optimum-venv.sh), never in the project venv: optimum needs
transformers 4, the project pins transformers 5. So it imports nothing from edgeprune or the tests.

    python optimum_probe.py REQUEST.json OUT.json

REQUEST: a list of {"bundle": dir, "texts": [[a, b] or [a], ...], "max_length": int | null (null = pad to longest)};
one process answers them all (importing torch and optimum is most of its time).
OUT: one answer per request, in order: {"logits", "encodings", "id2label", "model_class", "versions"},
or {"error": traceback} when that bundle did not load or run (the others are still answered).
"""
from __future__ import annotations

import json
import sys
import traceback


def answer(req: dict) -> dict:
    from importlib.metadata import version

    import numpy as np
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    bundle = req["bundle"]
    model = ORTModelForSequenceClassification.from_pretrained(bundle, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(bundle, local_files_only=True)
    texts = req["texts"]
    firsts = [t[0] for t in texts]
    seconds = [t[1] for t in texts] if all(len(t) == 2 for t in texts) else None
    static = req.get("max_length")
    enc = tok(firsts, seconds, truncation=True, return_tensors="pt", padding="max_length" if static else True,
              max_length=static or 64)
    logits = model(**enc).logits
    return {
        "logits": np.asarray(logits.detach().numpy() if hasattr(logits, "detach") else logits).tolist(),
        "encodings": {k: v.tolist() for k, v in enc.items()},  # what optimum was given (the tokenizer's output)
        "id2label": {str(k): v for k, v in model.config.id2label.items()},
        "model_class": type(model).__name__,
        "versions": {name: version(name) for name in ("optimum", "optimum-onnx", "transformers", "onnxruntime")},
    }


def main(request_path: str, out_path: str) -> None:
    answers = []
    for req in json.load(open(request_path)):
        try:
            answers.append(answer(req))
        except Exception:
            answers.append({"error": traceback.format_exc()})
    json.dump(answers, open(out_path, "w"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: optimum_probe.py REQUEST.json OUT.json", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
