# The two commands a newcomer needs: `make run` and `make test`.
CARGO ?= cargo

.PHONY: run test bench lint fmt migrate check-tools test-peers

## Run the server on its embedded default: SQLite under ./data, a generated key, port 8080.
run:
	$(CARGO) run --bin auth-http -- serve

## Every test: unit, storage contract (memory, SQLite, PostgreSQL), end to end over HTTP.
## PostgreSQL is expected at 127.0.0.1:5432 (AUTH_TEST_POSTGRES_URL to change it); outside
## CI, AUTH_TEST_SKIP_POSTGRES=1 skips those tests loudly.
## The examples are built first: tests run them (tests/api/peers.rs), and a build inside
## a test would count against its time limit (.config/nextest.toml).
test: check-tools test-peers
	$(CARGO) build --workspace --examples
	$(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) test --workspace --doc

## Release build, load test on SQLite and PostgreSQL, report in docs/benchmarks.md.
bench:
	bash scripts/bench.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

migrate:
	$(CARGO) run --bin auth-http -- migrate

check-tools:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked

## Real peers of the end-to-end suite: the OpenID provider (oidc-provider, pinned by its
## package-lock.json) under tests/peers/oidc-provider; PyJWT, schemathesis and npm jose
## (pinned, idempotent) by scripts/peers.sh.
test-peers:
	cd tests/peers/oidc-provider && npm ci --no-audit --no-fund
	bash scripts/peers.sh
