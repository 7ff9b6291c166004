# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install tfcae, run the quick start (train, compress, evaluate)
#   make test   install if needed, run the default test tier, then the slow tier
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DIR ?= runs/quickstart

.PHONY: install demo test test-fast test-slow benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(STAMP): setup.py constraints.txt | $(PY)
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python bin/quickstart --model_dir=$(DEMO_DIR)

# pytest exits 5 when it collects nothing; that must fail CI, and it does (non-zero).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow tests

test: test-fast test-slow

benchmark: $(STAMP)
	$(PY) bench/kodak_benchmark.py

clean:
	rm -rf runs build *.egg-info .pytest_cache
