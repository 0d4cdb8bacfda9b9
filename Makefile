# Chaukas Server. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help up down status test lint fmt build test-servers test-servers-stop contract-descriptors openapi lint-deploy bench bench-full abuse chaos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

up: ## run the whole stack locally (NATS, ClickHouse, migrations, gateway, writer, query)
	@bash deploy/local/stack.sh up

down: ## stop exactly what `make up` started
	@bash deploy/local/stack.sh down

status: ## show which local stack processes are running
	@bash deploy/local/stack.sh status

test: ## every check: fmt, clippy, contract, all tests against real NATS + ClickHouse
	@bash tests/harness/run-all.sh

lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	cargo fmt --all

build: ## build every crate
	cargo build --workspace --all-targets

test-servers: ## start the test NATS + ClickHouse and print the variables tests read
	@bash tests/harness/servers.sh start

test-servers-stop: ## stop the test servers
	@bash tests/harness/servers.sh stop

contract-descriptors: ## fetch the published chaukas-spec descriptors for the contract test
	@bash tests/contract/published.sh target/contract

lint-deploy: ## render + lint the Helm chart, validate manifests and docker-compose.yml (offline)
	@bash tests/deploy/run.sh

bench: ## the benchmark (~30 min) on a fresh stack of its own, appended to bench/results/; ONLY=log-cost or privacy runs one phase
	@bash bench/run.sh quick

bench-full: ## the long benchmark: 10M events stored before the query figures
	@bash bench/run.sh full

chaos: ## the fault-injection checker over 300 seeds (SEEDS=n, PARALLEL=n); about 40 min
	@bash tests/harness/chaos.sh

abuse: ## the hostile floods (issue #12) on a fresh stack: peak RSS and /healthz latency per attack
	@bash bench/abuse.sh

openapi: ## regenerate docs/openapi.yaml from the wire contract (tests/contract/openapi.py)
	@[ -x target/contract/venv/bin/python ] || bash tests/contract/published.sh target/contract
	@target/contract/venv/bin/python tests/contract/openapi.py write

clean: ## remove build output and local stack state (stop the stack first)
	cargo clean
	rm -rf .run
