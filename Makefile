# Entry points for developers and CI. `setup` needs root: it installs the
# container runtimes, starts dockerd and creates .venv (scripts/setup-host.sh).
BIN := .venv/bin

.PHONY: setup venv test compare lint clean

setup:
	bash scripts/setup-host.sh

# The virtualenv alone, for targets that need no container runtime.
venv:
	bash scripts/setup-host.sh --venv-only

test: setup
	$(BIN)/pytest tests

# Every suite on every available runtime, the host negative control included.
# The verdicts are the report's content, so they do not fail the target.
compare: setup
	$(BIN)/isobench run --all --no-gate

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src

clean:
	$(BIN)/isobench clean
