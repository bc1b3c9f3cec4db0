# make serve: set up, then run on 127.0.0.1:8000.  make test: set up, then run the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every pip call takes the constraints: they pin the local CPU build of torch.
PIP := $(BIN)/python -m pip install --quiet --constraint constraints.txt

.PHONY: install serve test models-tiny

install: $(VENV)/.installed models-tiny
	$(BIN)/studio db upgrade

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[ml,test]'
	touch $@

# The tiny random-weight models, unless real weights are present (the script skips what exists).
models-tiny: $(VENV)/.installed
	$(BIN)/python scripts/download_models.py --tiny

serve: install
	$(BIN)/studio serve --host 127.0.0.1 --port 8000

# The official Replicate JS client, which a test drives against a live server (needs Node.js 18+).
tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null || { echo "make test needs Node.js 18+ and npm (the Replicate JS client test)"; exit 1; }
	npm ci --prefix tests/js --no-audit --no-fund --silent
	touch $@

test: install tests/js/node_modules/.installed
	$(BIN)/python -m pytest
