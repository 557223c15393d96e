# One command for each job; each does its own set-up on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# llama-cpp-python builds llama.cpp from source (~5 min on 2 cores, cached by pip after);
# the multimodal library is not needed
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: serve test check lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python -m pip install --quiet -e '.[dev,transformers,llama,report]'
	touch $(STAMP)

## serve: run the gateway on the embedded defaults (127.0.0.1:8400)
serve: $(STAMP)
	$(BIN)/turnout serve $(ARGS)

# the HTML report test opens the report in headless Chromium (Debian's package; CI runs as
# root); a no-op once it is there, and the test says why it skips when it could not be installed
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	-@[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
		  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; } \
		|| echo "chromium is not installed (apt-get install chromium): the HTML report test skips"

## test: run the whole test suite
test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## check: ruff, mypy --strict and the tests (run before every commit)
check: lint typecheck test

## bench: gateway overhead vs direct, LiteLLM and Portkey (see bench/README.md)
bench: $(STAMP)
	bench/run.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
