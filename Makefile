# The two commands a new user needs: `make run` and `make test`. Each does its own set-up.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The lock files (requirements/*.txt, written by `make lock`): every package at one version,
# every file checked against its hash before pip installs it.
LOCKS := requirements

.PHONY: run test lint demo token kafka venv clean bench contracts lock

# pip and setuptools from the build lock, every dependency from the test lock, then the
# project itself with neither its dependencies nor a build environment of its own: nothing
# is installed that a lock file does not name. A changed lock (or pyproject.toml) reinstalls.
$(STAMP): pyproject.toml $(LOCKS)/build.txt $(LOCKS)/test.txt
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(LOCKS)/build.txt
	$(BIN)/pip install -q --require-hashes -r $(LOCKS)/test.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

kafka: $(STAMP)
	$(BIN)/python -m harness.kafka.local_kafka fetch

# Kafka on 127.0.0.1:9092, the workers, the API on 127.0.0.1:8000 and the OTP sink; Ctrl-C
# stops them all. The API trusts the development key unless AUTH_JWKS_FILE or AUTH_JWKS_URL,
# with AUTH_ISSUER and AUTH_AUDIENCE, name an identity provider's (environment or make args).
# KAFKA_SECURITY=sasl_ssl: the broker takes TLS and SCRAM-SHA-512 only, with ACLs; every
# process logs in as its own principal (dev/kafka_plane.py). Plaintext by default.
run: kafka
	$(BIN)/python -m dev.stack

# The whole suite, integration tests against a real Kafka broker included.
test: kafka
	bash harness/ensure_postgres.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Regenerates contracts/ (AsyncAPI, OpenAPI) and writes the v1 example events that are
# missing; committed examples are a frozen baseline and never written over.
contracts: $(STAMP)
	$(BIN)/python -m contracts write
	$(BIN)/python -m contracts examples

# Plays the bank's app against `make run`: key, device, OTP, signature, binding; then a
# restricted key, a login and a payment the device signs (the payment shown as signed).
demo: $(STAMP)
	$(BIN)/python -m dev.demo

# Prints a development bearer token (CLIENT_ID=... to choose the client).
token: $(STAMP)
	@$(BIN)/python -m harness.devkeys mint --client-id $${CLIENT_ID:-bank-app-1}

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

# The benchmarks, not part of `make test` (about 10 minutes on two cores; docs/benchmarks.md):
# the verifier against `openssl speed`, one worker draining 50,000 commands (on SQLite, with a
# million devices stored, on PostgreSQL, device signatures on SQLite; the baseline's worker
# beside today's), open-loop latency of the full stack and of its inline peer; prints the
# tables and writes var/bench/summary.json and its charts. Then the audit trail's cost. Starts
# and stops its own Kafka and PostgreSQL; BENCH_ARGS=... passes flags (python -m bench --help).
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP) $(LOCKS)/bench.txt
	$(BIN)/pip install -q --require-hashes -r $(LOCKS)/bench.txt
	touch $(BENCH_STAMP)

bench: kafka $(BENCH_STAMP)
	bash harness/ensure_postgres.sh >/dev/null
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.audit

# Re-locks requirements/*.txt after a change to pyproject.toml's dependencies (or to
# requirements/*.in), then commit them: pins that still fit are kept, so a re-lock moves
# only what the change needs. LOCK_ARGS=--upgrade moves every package to its newest
# release, LOCK_ARGS="--upgrade-package NAME" one of them. Resolved for CPython 3.11 on
# Linux whatever machine runs it, with the hash of every file PyPI has for each pinned
# version (the image may be built on arm64). bench.txt, the largest set, is resolved first
# and constrains the others, so the image (runtime.txt) runs the versions the tests ran.
LOCK_TOOL := $(VENV)/lock-tool
UV_COMPILE = $(LOCK_TOOL)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform linux --custom-compile-command 'make lock' $(LOCK_ARGS)

lock:
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	test -x $(LOCK_TOOL)/bin/python || $(PYTHON) -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/pip install -q --require-hashes -r $(LOCKS)/lock-tool.txt
	$(UV_COMPILE) $(LOCKS)/lock-tool.in -o $(LOCKS)/lock-tool.txt
	$(UV_COMPILE) $(LOCKS)/build.in -o $(LOCKS)/build.txt
	$(UV_COMPILE) pyproject.toml --extra test --extra bench -o $(LOCKS)/bench.txt
	$(UV_COMPILE) pyproject.toml --extra test -c $(LOCKS)/bench.txt -o $(LOCKS)/test.txt
	$(UV_COMPILE) pyproject.toml -c $(LOCKS)/bench.txt -o $(LOCKS)/runtime.txt
