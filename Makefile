# Entry points for developers and CI. `setup` needs root: it installs the
# container runtimes, starts dockerd and creates .venv (scripts/setup-host.sh).
BIN := .venv/bin

.PHONY: setup venv test compare bench lint clean

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

# The benchmarks on every available runtime, beside the same work run natively;
# they take the host alone, so nothing else should run meanwhile.
bench: setup
	$(BIN)/isobench run --bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src

clean:
	$(BIN)/isobench clean
