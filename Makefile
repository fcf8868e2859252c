# One obvious way in: `make demo` runs the main job, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch>=2.3,<2.14: this machine's index resolves it to the CPU wheel (README).
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/casework list
	$(BIN)/casework run churn
	$(BIN)/casework models churn

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/usecase_quality.py
	$(BIN)/python bench/score_throughput.py

clean:
	rm -rf .casework .pytest_cache build *.egg-info
