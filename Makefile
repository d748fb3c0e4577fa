# OnePipe: `make run` opens the dashboard on the shipped models, `make test` runs every check.
# Both set up .venv first when it is missing or the requirements changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8866

.PHONY: install run test test-fast lint format chromium benchmarks models models-data binder-badge clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

run: install
	@echo "OnePipe dashboard: open http://localhost:$(PORT)/ (ready in a few seconds); Ctrl-C to stop"
	$(BIN)/voila notebooks/app.ipynb --port=$(PORT)

# Debian's Chromium for the browser tests (never a downloaded browser build).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "could not install the chromium package (not Debian?); browser tests are skipped locally, fail on CI"; \
	else echo "chromium is missing: install Debian's package (sudo apt-get install chromium); browser tests will be skipped"; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install chromium lint
	$(BIN)/python -m pytest

# Everything but the slow tests (training, browser, Binder), for quick local runs.
test-fast: install lint
	$(BIN)/python -m pytest -m "not slow"

benchmarks: install
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/training.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts

# Point the README's Binder badge at the published repository: make binder-badge REPO=owner/name
# (default: the GitHub owner/name of the `origin` remote).
REPO ?= $(shell git remote get-url origin 2>/dev/null | sed -E 's#\.git$$##; s#^.*github\.com[:/]##')
binder-badge:
	@echo "$(REPO)" | grep -Eq '^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$$' || \
		{ echo "make binder-badge needs REPO=owner/name (the GitHub repository), e.g. REPO=jane/onepipe" >&2; exit 2; }
	sed -i.bak -E 's#(mybinder\.org/v2/gh/)[^/]+/[^/]+/#\1$(REPO)/#' README.md && rm -f README.md.bak
	@grep -o 'mybinder\.org/v2/gh/[^)]*' README.md

# Rebuild the four shipped bundles and their samples (the exact commands of models/README.md). The two audio
# ones are final models trained on every file and take their calibration from measured runs of the same recipe
# (in runs/: speech-commands from three that hold out other speakers, pooled); models/README.md also gives the
# commands that measured their recipes. cifar10 trains on the CIFAR-10 training images (CIFAR10_TRAIN) and test
# images (CIFAR10), taught by a larger network trained on the training images (runs/cifar10-teacher, not shipped),
# and is calibrated on the 5 % of the training images it holds out.
# DATA (no default) holds speech_commands/, fsdd/, mnist/, cifar10/, cifar10_train/ in the class-folder layout;
# each can be named on its own, e.g. SPEECH_COMMANDS=data/speech-commands-test as `python -m app data download`
# names it.
DATA ?=
SPEECH_COMMANDS ?= $(if $(DATA),$(DATA)/speech_commands)
FSDD ?= $(if $(DATA),$(DATA)/fsdd)
MNIST ?= $(if $(DATA),$(DATA)/mnist)
CIFAR10 ?= $(if $(DATA),$(DATA)/cifar10)
# CIFAR-10 training images; the cifar10 bundle trains on them and on CIFAR10 (test images)
CIFAR10_TRAIN ?= $(if $(DATA),$(DATA)/cifar10_train)
models-data:
	@for pair in "SPEECH_COMMANDS=$(SPEECH_COMMANDS)" "FSDD=$(FSDD)" "MNIST=$(MNIST)" "CIFAR10=$(CIFAR10)" "CIFAR10_TRAIN=$(CIFAR10_TRAIN)"; do \
		folder="$${pair#*=}"; if [ -z "$$folder" ] || [ ! -d "$$folder" ]; then \
			echo "make models: $${pair%%=*} is $${folder:-not set}; expected a class-folder dataset." >&2; \
			echo "Pass DATA=DIR holding speech_commands/ fsdd/ mnist/ cifar10/ cifar10_train/, or name each folder, e.g. after" >&2; \
			echo "python -m app data download speech-commands-test (and fsdd, mnist, cifar10):" >&2; \
			echo "  make models DATA=data SPEECH_COMMANDS=data/speech-commands-test   (see models/README.md)" >&2; \
			exit 2; fi; done
models: models-data install
	$(BIN)/python -m app data synth-speech data/synthetic-commands --replace --words yes no up down left right on off stop go _unknown_=bed _unknown_=bird _unknown_=cat _unknown_=dog _unknown_=eight _unknown_=five _unknown_=four _unknown_=happy _unknown_=house _unknown_=marvin _unknown_=nine _unknown_=one _unknown_=seven _unknown_=sheila _unknown_=six _unknown_=three _unknown_=tree _unknown_=two _unknown_=wow _unknown_=zero _unknown_=backward _unknown_=forward _unknown_=follow _unknown_=learn _unknown_=visual --per-class 300 --silence 200 --seed 2
	$(BIN)/python -m app data synth-speech data/synthetic-digits --replace --words 0=zero 1=one 2=two 3=three 4=four 5=five 6=six 7=seven 8=eight 9=nine --per-class 1000 --seed 1
	$(BIN)/python -m app train $(SPEECH_COMMANDS) --out models/speech-commands --validation-percent 0 --test-percent 0 --extra-train-data data/synthetic-commands --augment-copies 10 --subtract-band-mean --reverberation 0.5 --force
	$(BIN)/python -m app train $(SPEECH_COMMANDS) --out runs/speech-commands --split-salt onepipe --extra-train-data data/synthetic-commands --augment-copies 10 --subtract-band-mean --reverberation 0.5 --force
	$(BIN)/python -m app train $(SPEECH_COMMANDS) --out runs/speech-commands-2 --split-salt onepipe-2 --extra-train-data data/synthetic-commands --augment-copies 10 --subtract-band-mean --reverberation 0.5 --force
	$(BIN)/python -m app train $(SPEECH_COMMANDS) --out runs/speech-commands-3 --split-salt onepipe-3 --extra-train-data data/synthetic-commands --augment-copies 10 --subtract-band-mean --reverberation 0.5 --force
	$(BIN)/python -m app calibrate models/speech-commands --from runs/speech-commands runs/speech-commands-2 runs/speech-commands-3
	$(BIN)/python -m app train $(FSDD) --out models/spoken-digits --sample-rate 8000 --group-pattern '^[^_]+_([^_]+)_' --validation-percent 0 --test-percent 0 --extra-train-data data/synthetic-digits --augment-copies 3 --frequency-warp 0.1 --weight-averaging --window-past-edges --reverberation 0.5 --force
	$(BIN)/python -m app train $(FSDD) --out runs/digits-george --sample-rate 8000 --group-pattern '^[^_]+_([^_]+)_' --test-groups george --validation-percent 0 --extra-train-data data/synthetic-digits --augment-copies 3 --frequency-warp 0.1 --weight-averaging --window-past-edges --reverberation 0.5 --force
	$(BIN)/python -m app calibrate models/spoken-digits --from runs/digits-george
	$(BIN)/python -m app data digits data/sklearn-digits --replace
	$(BIN)/python -m app train $(MNIST) --out models/mnist --image-size 28x28 --channels 1 --background dark --center-content --extra-train-data data/sklearn-digits --force
	$(BIN)/python -m app calibrate models/mnist $(MNIST) --familiarity max_score
	$(BIN)/python -m app train $(CIFAR10_TRAIN) --out runs/cifar10-teacher --network teacher --image-size 32x32 --horizontal-flip --rotation 0 --zoom 0 --epochs 20 --batch-size 128 --validation-percent 5 --test-percent 0 --force
	$(BIN)/python -m app train $(CIFAR10_TRAIN) --out models/cifar10 --extra-train-data $(CIFAR10) --distill-from runs/cifar10-teacher --image-size 48x48 --horizontal-flip --rotation 0 --zoom 0 --translation 0.0625 --epochs 80 --weight-averaging --validation-percent 5 --test-percent 0 --force
	$(BIN)/python -m app data samples
