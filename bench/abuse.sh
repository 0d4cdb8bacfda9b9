#!/usr/bin/env bash
# `make abuse`: the floods of issue #12 against a fresh stack of its own (release build, state
# under .run-abuse/, ports apart from `make up`'s, the bench's and the test servers'), printing
# per attack the gateway's and writer's peak RSS and the /healthz latency meanwhile, then how
# long the gateway takes to fall back under 200 MiB. The stack is stopped and removed after.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export RUN_DIR=$ROOT/.run-abuse
export NATS_PORT=34222 NATS_MONITOR_PORT=38222 CLICKHOUSE_HTTP_PORT=38123 CLICKHOUSE_TCP_PORT=39000
export GATEWAY_GRPC_PORT=35051 GATEWAY_HTTP_PORT=38080 WRITER_HTTP_PORT=38081
export OTLP_GRPC_PORT=34317 OTLP_HTTP_PORT=34318
export QUERY_GRPC_PORT=35052 QUERY_HTTP_PORT=38082
rm -rf "$RUN_DIR"
cleanup() {
  bash deploy/local/stack.sh down >/dev/null 2>&1 || true
  rm -rf "$ROOT/target/abuse-logs" && mkdir -p "$ROOT/target" && cp -r "$RUN_DIR/logs" "$ROOT/target/abuse-logs" 2>/dev/null || true
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
bash deploy/local/stack.sh up >/dev/null
cargo build --release --quiet -p chaukas-bench --bin chaukas-abuse
target/release/chaukas-abuse --grpc "127.0.0.1:$GATEWAY_GRPC_PORT" --http "127.0.0.1:$GATEWAY_HTTP_PORT" \
  --pids "$RUN_DIR/pids" --seconds "${ABUSE_SECONDS:-20}"
