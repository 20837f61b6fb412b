# Two set-up commands for a fresh machine; each builds its own environment (.venv) first.
PY ?= python3.11
VENV ?= .venv
PIP = $(VENV)/bin/pip

.PHONY: demo test env clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[all]'
	touch $@

env: $(VENV)/.installed

demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(VENV)/bin/edgeprune demo --out runs/demo --overwrite

test: $(VENV)/.installed
	bash scripts/setup-test-system.sh || echo "setup-test-system.sh failed: the ssh/emulation tests will fail and say why"
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) runs
