#!/usr/bin/env bash
# `make bench` (short profile, ~30 min) and `make bench-full` (10M events): a fresh stack of
# its own (release build, state under .run-bench/, ports apart from `make up`'s and the test
# servers'), the benchmark, then the stack stopped and its data removed. Results are appended
# to bench/results/results.jsonl; docs/benchmarks.md explains the figures. ONLY=log-cost or
# ONLY=privacy runs that phase alone and appends nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PROFILE=${1:-quick}
export RUN_DIR=$ROOT/.run-bench
export NATS_PORT=24222 NATS_MONITOR_PORT=28222 CLICKHOUSE_HTTP_PORT=28123 CLICKHOUSE_TCP_PORT=29000
export GATEWAY_GRPC_PORT=25051 GATEWAY_HTTP_PORT=28080 WRITER_HTTP_PORT=28081
export OTLP_GRPC_PORT=24317 OTLP_HTTP_PORT=24318
export QUERY_GRPC_PORT=25052 QUERY_HTTP_PORT=28082

if [ -f "$ROOT/.run/pids/clickhouse.pid" ]; then
  echo "note: the \`make up\` stack is running; its idle processes share the CPU with the benchmark" >&2
fi
rm -rf "$RUN_DIR"
cleanup() {
  bash deploy/local/stack.sh down >/dev/null 2>&1 || true
  # The services' logs outlive the stack, for a run that went wrong.
  rm -rf "$ROOT/target/bench-logs" && mkdir -p "$ROOT/target" && cp -r "$RUN_DIR/logs" "$ROOT/target/bench-logs" 2>/dev/null || true
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
bash deploy/local/stack.sh up >/dev/null
# The stack's NATS and ClickHouse credentials (the raw baselines talk to both directly).
set -a; source "$RUN_DIR/cli.env"; set +a
cargo build --release --quiet -p chaukas-bench
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit-dirty"
target/release/chaukas-bench --profile "$PROFILE" --commit "$commit" \
  --grpc "http://127.0.0.1:$GATEWAY_GRPC_PORT" --http "127.0.0.1:$GATEWAY_HTTP_PORT" \
  --nats "nats://127.0.0.1:$NATS_PORT" --clickhouse "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT" \
  --pids "$RUN_DIR/pids" --results bench/results \
  --restart-writer "bash '$ROOT/deploy/local/stack.sh' restart-writer" \
  ${ONLY:+--only "$ONLY"}
