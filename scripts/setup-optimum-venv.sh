#!/usr/bin/env bash
# Idempotent set-up of .venv-optimum: a side venv with Hugging Face optimum, used only by
# tests/test_optimum_bundle.py to load exported ONNX bundles the way users do
# (ORTModelForSequenceClassification.from_pretrained(bundle)).
# Why a separate venv: optimum pins transformers<5, the project pins transformers 5, so the two cannot share one.
# The pins live in tests/support/optimum-requirements.txt; a stamp named after that file's hash makes a second
# run a no-op (about a second). About 1.3 GB, about 40 s to build on a quiet machine.
# Env: EDGEPRUNE_OPTIMUM_VENV (default <repo>/.venv-optimum, gitignored), EDGEPRUNE_OPTIMUM_PYTHON (the Python 3.11
# it is made with; default python3.11, else the project venv's interpreter).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${EDGEPRUNE_OPTIMUM_VENV:-$ROOT/.venv-optimum}
REQ=$ROOT/tests/support/optimum-requirements.txt
PY=${EDGEPRUNE_OPTIMUM_PYTHON:-python3.11}
if [ -z "${EDGEPRUNE_OPTIMUM_PYTHON:-}" ] && ! command -v "$PY" >/dev/null && [ -x "$ROOT/.venv/bin/python" ]; then
    PY=$ROOT/.venv/bin/python   # venv makes a venv on the base interpreter, not inside .venv
fi

say() { echo "setup-optimum-venv: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ -f "$REQ" ] || die "$REQ not found"
hash=$(sha256sum "$REQ" | cut -c1-16)
stamp="$VENV/.edgeprune-optimum-$hash"

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9   # one build at a time (parallel make, two shells)

if [ -f "$stamp" ] && [ -x "$VENV/bin/python" ]; then
    say "ok ($VENV)"
    exit 0
fi

command -v "$PY" >/dev/null || die "$PY not found; set EDGEPRUNE_OPTIMUM_PYTHON to a Python 3.11 interpreter"
say "building $VENV from $(basename "$REQ") (about 1.3 GB)"
rm -rf "$VENV"
fail() { rm -rf "$VENV"; die "$1"; }   # no half-built venv: the test then says how to build it
"$PY" -m venv "$VENV" || fail "$PY -m venv failed"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >"$log" 2>&1 \
    || { grep -v "WARNING: Location" "$log" >&2 || true; fail "pip install -r $REQ failed"; }
"$VENV/bin/python" -c 'import optimum.onnxruntime, transformers; assert transformers.__version__.startswith("4.")' \
    >"$log" 2>&1 || { cat "$log" >&2; fail "optimum.onnxruntime does not import in $VENV"; }
touch "$stamp"
say "ok ($VENV)"
