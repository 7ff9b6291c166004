# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install tfcae, code a photo with a zoo model (next to JPEG at
#               the same size), then the quick start (train, compress, evaluate)
#   make test   install if needed, run the default test tier, then the slow tier
#   make zoo    train the zoo's rate ladder (≈ 1 h 50 min on 2 cores, resumable) and publish it
#
# TensorFlow 2.14 (TFC's last release pins it) exists for Python 3.9-3.11 only: take the
# first of python3, python3.11, python3.10, python3.9 in that range (PYTHON=... overrides).
PY_OK  := import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))
PYTHON ?= $(firstword $(foreach p,python3 python3.11 python3.10 python3.9,\
            $(shell command -v $(p) >/dev/null 2>&1 && $(p) -c '$(PY_OK)' >/dev/null 2>&1 && echo $(p))))
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DIR ?= runs/quickstart
DEMO_MODEL ?= factorized
DEMO_QUALITY ?= 3
DEMO_IMAGE ?= data/sample/eval/kodim23.png

.PHONY: install demo demo-zoo quickstart zoo test test-fast test-slow benchmark clean

$(PY):
	@test -n "$(PYTHON)" && $(PYTHON) -c '$(PY_OK)' >/dev/null 2>&1 || { echo "error: tfcae needs \
	Python 3.9-3.11 (TensorFlow 2.14), found $$($(or $(PYTHON),python3) --version 2>&1 | head -1): install python3.11 \
	(e.g. apt install python3.11-venv, or pyenv install 3.11) or set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(STAMP): setup.py constraints.txt | $(PY)
	$(PY) -m pip install -q -c constraints.txt -e ".[test,device,energy]"
	touch $(STAMP)

install: $(STAMP)

demo: demo-zoo quickstart

# The main job first: code a shipped Kodak image with a zoo model, decode it (the model is
# found from the file's fingerprint), and compare with JPEG at the same file size.
demo-zoo: $(STAMP)
	@mkdir -p $(DEMO_DIR)
	$(PY) bin/compress --model=zoo:$(DEMO_MODEL)/$(DEMO_QUALITY) --input=$(DEMO_IMAGE) --output=$(DEMO_DIR)/zoo.tfcae
	$(PY) bin/decompress --input=$(DEMO_DIR)/zoo.tfcae --output=$(DEMO_DIR)/zoo.png
	$(PY) bin/compare --original=$(DEMO_IMAGE) --file=$(DEMO_DIR)/zoo.tfcae --decoded=$(DEMO_DIR)/zoo.png

# The quick start: train on the shipped BSDS500 sample, code one shipped Kodak image,
# evaluate on the three shipped Kodak images (disjoint from the training images).
quickstart: $(STAMP)
	$(PY) bin/train --flagfile=configs/quickstart.cfg --model_dir=$(DEMO_DIR)
	$(PY) bin/compress --model_dir=$(DEMO_DIR) --input=data/sample/eval/kodim23.png --output=$(DEMO_DIR)/kodim23.tfcae
	$(PY) bin/decompress --model_dir=$(DEMO_DIR) --input=$(DEMO_DIR)/kodim23.tfcae --output=$(DEMO_DIR)/kodim23.png
	$(PY) bin/evaluate --model_dir=$(DEMO_DIR) --images='data/sample/eval/*.png' --output=$(DEMO_DIR)/eval.json

# The zoo's ladder (tfcae/zoo/ladder.py): two trainings at a time, one core each; re-run to resume.
ZOO_LADDER ?= factorized
ZOO_IMAGES ?= ../shared/data/kodak/*.png
zoo: $(STAMP)
	$(PY) bin/zoo --ladder=$(ZOO_LADDER) --out=runs/zoo --images='$(ZOO_IMAGES)'

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
