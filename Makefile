# Every target works on a fresh clone: the first one run creates .venv and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/quickstart.jsonl

.PHONY: install demo test lint typecheck pytest bench clean

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

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
