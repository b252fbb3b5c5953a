# gpufit — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
PORT ?= 8000
# llama-cpp-python compiles llama.cpp at install. Its default build targets every instruction set of the CPU it is
# built on: on a virtual Xeon with AVX-512 and AMX, that build crashed in llama_decode (segfault) on the tests' tiny
# model, and the portable build passes. A GPU build sets its own (README, "Building llama.cpp for your GPU").
CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export CMAKE_ARGS

.PHONY: run test venv lint bench accuracy gpu-check clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@PORT=$(PORT) bash scripts/run.sh

test: $(STAMP)
	@bash scripts/test.sh $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m planner.bench

accuracy: $(STAMP)
	$(PY) -m planner.accuracy
	$(PY) -m physics.fit --report

gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf var/ .pytest_cache
