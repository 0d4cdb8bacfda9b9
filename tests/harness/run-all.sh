#!/usr/bin/env bash
# `make test`: every check, against real servers this script starts and always stops.
#   1. formatting and lints (cargo fmt --check, clippy -D warnings)
#   2. the published contract's descriptors, from PyPI into a throwaway virtualenv, and the
#      check that docs/openapi.yaml is generated from them and valid
#   3. the deployment files (make lint-deploy: chart rendered and validated, compose checked)
#   4. current ClickHouse in-process (chDB, PyPI): migrations, write path, write-once settings
#   5. NATS + ClickHouse test servers (tests/harness/servers.sh)
#   6. cargo test for the whole workspace, including the contract test and the console in
#      headless Chromium (its packages first: tests/browser/setup.sh)
#   7. the interop test: published chaukas-sdk and chaukas-spec-* clients against the services
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "published contract descriptors (PyPI: chaukas-spec-client, chaukas-spec-server)"
bash tests/contract/published.sh "$TARGET/contract"
export CHAUKAS_PUBLISHED_DESCRIPTORS="$TARGET/contract/published.binpb"
export CHAUKAS_CONTRACT_PYTHON="$TARGET/contract/venv/bin/python"

step "docs/openapi.yaml matches the contract and is valid OpenAPI"
"$TARGET/contract/venv/bin/python" tests/contract/openapi.py check

step "deploy files: Helm chart and docker-compose.yml (make lint-deploy)"
cargo build --quiet -p chaukas
bash tests/deploy/run.sh

step "current ClickHouse (chDB 26.9, in-process): migrations, write path, write-once settings"
bash tests/chdb/run.sh "$TARGET/chdb"

step "browser test: Debian's Chromium and playwright-core (tests/browser/setup.sh)"
bash tests/browser/setup.sh

step "test servers"
trap 'bash tests/harness/servers.sh stop' EXIT
eval "$(bash tests/harness/servers.sh start)"

step "cargo test --workspace"
cargo test --workspace --no-fail-fast

step "interop: published chaukas-sdk and chaukas-spec clients (PyPI) against the services"
bash tests/interop/run.sh
