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

# The quick start: train on the shipped BSDS500 sample, code one shipped Kodak image,
# evaluate on the three shipped Kodak images (disjoint from the training images).
demo: $(STAMP)
	$(PY) bin/train --flagfile=configs/quickstart.cfg --model_dir=$(DEMO_DIR)
	$(PY) bin/compress --model_dir=$(DEMO_DIR) --input=data/sample/eval/kodim23.png --output=$(DEMO_DIR)/kodim23.tfcae
	$(PY) bin/decompress --model_dir=$(DEMO_DIR) --input=$(DEMO_DIR)/kodim23.tfcae --output=$(DEMO_DIR)/kodim23.png
	$(PY) bin/evaluate --model_dir=$(DEMO_DIR) --images='data/sample/eval/*.png' --output=$(DEMO_DIR)/eval.json

# pytest exits 5 when it collects nothing; that must fail CI, and it does (non-zero).
# Two pytest-xdist workers, one test module each at a time (module fixtures are built
# once); much of the work is single-threaded tracing, export and tool start-up.
JOBS ?= 2
PYTEST := $(PY) -m pytest -q -n $(JOBS) --dist loadscope
test-fast: $(STAMP)
	$(PYTEST) -m "not slow" tests

test-slow: $(STAMP)
	$(PYTEST) -m slow tests

test: test-fast test-slow

# make benchmark [MODEL_DIRS=runs/a,runs/b MODEL_NAME=tfcae-x IMAGES='dir/*.png' REUSE=1]
MODEL_DIRS ?=
MODEL_NAME ?= tfcae
IMAGES ?= ../shared/data/kodak/*.png
benchmark: $(STAMP)
	$(PY) bench/kodak_benchmark.py --images='$(IMAGES)' --model_dirs=$(MODEL_DIRS) \
	  --model_name=$(MODEL_NAME) $(if $(REUSE),--reuse,)

clean:
	rm -rf runs build *.egg-info .pytest_cache
