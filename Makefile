# thrifty — the two commands: `make test` and `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
THRIFTY := $(VENV)/bin/thrifty
# Portable llama.cpp build (pip caches the wheel; later installs take seconds).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export CMAKE_ARGS := $(LLAMA_CMAKE_ARGS)
# Offline always: nothing reaches for a model hub or a price map.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test demo install lint clean-venv models docs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# One install for tests and demo: every extra, torch pinned to the CPU wheel by constraints.txt.
$(VENV)/.installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt -e ".[all]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check src tests bench

test: install
	$(THRIFTY) models pull smollm2-135m-instruct
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest -q

models: install
	$(THRIFTY) models pull qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct

# The demo: both models answer the test split; the small one answers the train split too; its report card is
# built from those train grades; zero-shot and report-card grade predictions are scored on the test split; both
# models answer the val split, where the report-card router is calibrated; the router and its baselines are
# replayed on the test split.
# Every step stores its records as it goes, so a re-run reuses them and takes seconds.
demo: install
	$(THRIFTY) demo

# docs/cli.md from the CLI's parser (tests/test_cli_docs.py fails when it is stale).
docs: install
	$(PY) -m thrifty.cli.docgen

clean-venv:
	rm -rf $(VENV)
