# The two commands a new user needs: `make run` and `make test`. Each does its own set-up.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint demo token kafka venv clean bench contracts

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

kafka: $(STAMP)
	$(BIN)/python -m deploy.kafka.local_kafka fetch

# Kafka on 127.0.0.1:9092, the workers, the API on 127.0.0.1:8000 and the OTP sink; Ctrl-C
# stops them all.
run: kafka
	$(BIN)/python -m deploy.dev.stack

# The whole suite, integration tests against a real Kafka broker included.
test: kafka
	bash deploy/postgres/ensure_postgres.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Regenerates contracts/ (AsyncAPI, OpenAPI) and writes the v1 example events that are
# missing; committed examples are a frozen baseline and never written over.
contracts: $(STAMP)
	$(BIN)/python -m deploy.contracts write
	$(BIN)/python -m deploy.contracts examples

# Plays the bank's app against `make run`: key, device, OTP, signature, binding.
demo: $(STAMP)
	$(BIN)/python -m deploy.dev.demo

# Prints a development bearer token (CLIENT_ID=... to choose the client).
token: $(STAMP)
	@$(BIN)/python -m deploy.dev.devkeys mint --client-id $${CLIENT_ID:-bank-app-1}

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (tables against a baseline of the same run); the HTTP one needs `make run`.
bench: $(STAMP)
	$(BIN)/python -m deploy.bench.verify
	$(BIN)/python -m deploy.bench.audit
	$(BIN)/python -m deploy.bench.http
