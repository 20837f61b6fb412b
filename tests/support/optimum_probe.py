"""Load an exported ONNX bundle the way a user of Hugging Face optimum does, run sentences, write JSON.

Runs under ``.venv-optimum/bin/python`` (scripts/setup-optimum-venv.sh), never in the project venv: optimum needs
transformers 4, the project pins transformers 5. So it imports nothing from edgeprune or the tests.

    python optimum_probe.py REQUEST.json OUT.json

REQUEST: {"bundle": dir, "texts": [[a, b] or [a], ...], "max_length": int | null (null = pad to longest)}.
OUT: {"logits", "encodings", "id2label", "model_class", "versions"}.
"""
from __future__ import annotations

import json
import sys


def main(request_path: str, out_path: str) -> None:
    import numpy as np
    import optimum
    import transformers
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    req = json.load(open(request_path))
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
    json.dump({
        "logits": np.asarray(logits.detach().numpy() if hasattr(logits, "detach") else logits).tolist(),
        "encodings": {k: v.tolist() for k, v in enc.items()},  # what optimum was given (the tokenizer's output)
        "id2label": {str(k): v for k, v in model.config.id2label.items()},
        "model_class": type(model).__name__,
        "versions": {"optimum": getattr(optimum, "__version__", "?"), "transformers": transformers.__version__},
    }, open(out_path, "w"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: optimum_probe.py REQUEST.json OUT.json", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
