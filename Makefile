# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs grokkit, and trains x/y mod 97 at 50 % data until it groks
#   make test   creates .venv, installs grokkit with its test extras, and runs the fast test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
DEMO_OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup demo test test-slow bench clean-venv

setup: $(VENV)/.installed

# torch first and pinned: on these machines the pinned CPU build lies on disk, while an open
# range pulled in by pip's resolver would download several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[test,ray,viewers]"
	touch $@

demo: setup
	$(VENV)/bin/grokkit train --op x/y --modulus 97 --train-fraction 0.5 --optimizer adamw \
		--steps 20000 --stop-after-val-99 200 --out $(DEMO_OUT)

test: setup
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) benchmarks/compare.py

clean-venv:
	rm -rf $(VENV)
