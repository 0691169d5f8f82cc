# deepcolor: `make` lists the targets. Paths are variables: make colorize IN=scans OUT=colour
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Data: $DEEPCOLOR_DATA if set, else ../shared/data (the development data beside the checkout).
DATA ?= $(or $(DEEPCOLOR_DATA),../shared/data)
REFS ?= $(DATA)/bsds500/train $(DATA)/bsds500/val
FEATURES ?= work/features
# MODEL: the model colorize uses (empty: the bundled one, as `deepcolor colorize` without --model)
# and the one train-clusters writes (empty: work/model)
MODEL ?=
TRAINED_MODEL = $(or $(MODEL),work/model)
# colorize: SATURATION=1.3 for stronger colour (1: the paper's output), GALLERY=1 for OUT/index.html
SATURATION ?=
GALLERY ?=
IN ?= $(DATA)/bsds500/test
OUT ?= work/colorized
TRUTH ?= $(IN)
JOBS ?= 2
BACKEND ?= loky
SCHEDULER ?=
SEED ?= 0
BENCH_OUT ?= work/bench.json
# the bench's sections; `baselines` (the comparison systems' training choices, ~30 min) only when named
BENCH_SECTIONS ?= quality intel parsing speed
REPORT_OUT ?= work/report
# The grey-image parser (issue 15): the ADE20K parser adapted to grey photos by distillation.
TEACHER ?= $(DATA)/models/deeplabv3_mobilenetv2_ade20k.tflite
PARSER ?= deepcolor/models/parser
DEFAULT_MODEL ?= deepcolor/models/default
# A personal model (issue 17): the grey photos TARGETS, references picked from POOL, fine-tuned from INIT
# (empty: the bundled model) into PERSONAL/model; N_REFS references.
TARGETS ?=
POOL ?= $(DATA)/intel_scenes/train $(DATA)/imagenet_sample/train $(DATA)/bsds500/train $(DATA)/bsds500/val
N_REFS ?= 50
PERSONAL ?= work/personal
INIT ?=

.DEFAULT_GOAL := help
.PHONY: help install parser default-model features train-clusters colorize evaluate bench report demo test clean personal

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(BIN)/deepcolor: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,dask]'
	@touch $@

install: $(BIN)/deepcolor ## create .venv and install deepcolor with pinned dependencies

parser: install ## rebuild the bundled grey-image parser PARSER from TEACHER and the data sets in DATA (~70 min on 2 cores)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,semantic]'
	$(BIN)/deepcolor parser train --teacher $(TEACHER) --data $(DATA) --out $(PARSER) --seed $(SEED) --overwrite

default-model: install ## rebuild the bundled default model DEFAULT_MODEL from the wide reference set of DATA (~30 min on 2 cores)
	$(BIN)/python -m deepcolor.refsets wide --data $(DATA) --out work/wide-refs
	$(BIN)/deepcolor features work/wide-refs --out work/default-features --jobs $(JOBS) --seed 0
	OMP_NUM_THREADS=1 $(BIN)/deepcolor train work/default-features --out $(DEFAULT_MODEL) --seed 0 --jobs 1 --overwrite

features: install ## sample training pixels from REFS into FEATURES
	$(BIN)/deepcolor features $(REFS) --out $(FEATURES) --jobs $(JOBS)

train-clusters: install ## train the adaptive ensemble (per-cluster networks) in MODEL (default work/model) from FEATURES
	$(BIN)/deepcolor train $(FEATURES) --out $(TRAINED_MODEL) --seed $(SEED) --jobs $(JOBS) --overwrite

colorize: install ## colorize IN (file or folder) into OUT with MODEL (default: the bundled model; GALLERY=1: OUT/index.html)
	$(BIN)/deepcolor colorize $(IN) $(OUT) $(if $(MODEL),--model $(MODEL)) --jobs $(JOBS) --backend $(BACKEND) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(SATURATION),--saturation $(SATURATION)) $(if $(GALLERY),--gallery)

evaluate: install ## PSNR, SSIM, colourfulness of OUT against TRUTH (written to OUT/../evaluation)
	$(BIN)/deepcolor evaluate --truth $(TRUTH) --pred $(OUT) --out $(dir $(OUT))evaluation --jobs $(JOBS)

personal: install ## a personal model for the grey photos TARGETS: N_REFS references picked from POOL, fine-tuned (~20 s; 2-3 min for a new POOL): PERSONAL/model
	@test -n "$(TARGETS)" || { echo "make personal: set TARGETS=folder of your grey photos (and POOL=colour photos)" >&2; exit 2; }
	$(BIN)/deepcolor pick $(TARGETS) --pool $(POOL) -n $(N_REFS) --out $(PERSONAL)/pick --jobs $(JOBS)
	$(BIN)/deepcolor features $(PERSONAL)/pick/references --out $(PERSONAL)/features --jobs $(JOBS)
	$(BIN)/deepcolor train $(PERSONAL)/features --init $(or $(INIT),default) --out $(PERSONAL)/model --seed $(SEED) --overwrite
	@echo "make personal: colorize with: make colorize IN=$(TARGETS) OUT=work/colorized MODEL=$(PERSONAL)/model"

# bench installs the speed section's peer, the ECCV16 network of Zhang et al.: its package alone,
# without its dependencies (torch is deepcolor's own; matplotlib and IPython are not needed to time it).
bench: install ## measure quality and speed on BSDS500 (DATA); JSON on stdout and in BENCH_OUT
	$(BIN)/python -m pip install --quiet --no-deps rz-colorization==1.0.5 || echo "make bench: rz-colorization not installed; the speed section says so" >&2
	$(BIN)/python -m deepcolor.bench --data $(DATA) --jobs $(JOBS) --out $(BENCH_OUT) --sections $(BENCH_SECTIONS)

report: install ## the paper's ablation and the baselines trained on REFS, scored on IN: REPORT_OUT/report.html
	$(BIN)/deepcolor report $(REFS) --test $(IN) --out $(REPORT_OUT) --jobs $(JOBS) --seed $(SEED)

demo: install ## colorize sample photos shipped with scikit-image/scikit-learn with the bundled model, print PSNR
	$(BIN)/python -m deepcolor.demo --work work/demo

test: install ## run the test suite
	$(BIN)/python -m pytest

clean: ## remove work/ (features, models, outputs of these targets)
	rm -rf work
