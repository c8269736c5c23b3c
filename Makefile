# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# peer simulators (PennyLane, tensorcircuit-ng) live in their own venv, never in the test one
PEERS_VENV := .venv-peers
# This machine has a local CPU wheel of torch; installing it first keeps pip from pulling CUDA builds.
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test test-slow lint docs bench bench-train bench-peers setup clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/qrnn demo

# lint and format check first (seconds), then the default suite in a random order (pytest-randomly
# prints the seed; rerun an order with -p randomly -p "randomly_seed=N"), every test under a timeout
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# the API reference (pdoc) as HTML in docs/api/ (build output, git ignores it)
docs: setup
	$(PY) docs/build_api.py docs/api

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) benchmarks/engine.py

bench-train: setup
	$(PY) benchmarks/train_step.py --json benchmarks/results/train_step.json

$(PEERS_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet "$(TORCH_PIN)"
	$(PEERS_VENV)/bin/python -m pip install --quiet -e ".[peers]"
	touch $@

bench-peers: $(PEERS_VENV)/.installed
	$(PEERS_VENV)/bin/python benchmarks/peers.py

clean:
	rm -rf $(VENV) runs .pytest_cache
