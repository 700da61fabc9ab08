# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := examples/demo/demo.toml

.PHONY: demo test fuzz venv system-deps bench bench-setup bench-incremental clean

$(BIN)/vigil: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[all,test]'
	$(BIN)/python -m compileall -q src  # an editable install is not byte-compiled
	touch $@

venv: $(BIN)/vigil

system-deps:
	@scripts/install-system-deps.sh

# A real backup of the bundled example app and its SQLite database into .demo/
demo: venv
	$(BIN)/vigil --config $(DEMO) run
	$(BIN)/vigil --config $(DEMO) list
	$(BIN)/vigil --config $(DEMO) runs --limit 5
	$(BIN)/vigil --config $(DEMO) health

test: venv system-deps
	$(BIN)/pytest -n 2 -q tests

# Hostile archives, indexes and manifests: many more examples than `make test`, fresh seeds.
FUZZ_EXAMPLES ?= 2000
fuzz: venv
	VIGIL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -n 0 -q --timeout=3600 --hypothesis-show-statistics \
		tests/e2e/test_hostile_fuzz.py

# ruff (style, imports, bugbear) on everything, mypy --strict on src/
lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/bench_backup.py --vigil $(BIN)/vigil

# The peers bench_incremental.py compares with (restic, borgbackup); never part of `make test`.
bench-setup:
	@scripts/install-bench-deps.sh

bench-incremental: venv
	$(BIN)/python bench/bench_incremental.py --vigil $(BIN)/vigil

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis
