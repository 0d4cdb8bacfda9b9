#!/usr/bin/env bash
# The real NATS and ClickHouse servers the test suite runs against: one pair for the whole
# run, on ports apart from `make up`'s so a running dev stack is never touched. State lives
# under target/test-servers and is wiped at every start: tests isolate themselves by
# database and stream names, not by server.
#
#   servers.sh start   install if needed, start both, print the variables tests read
#   servers.sh stop    stop exactly what start started

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUN_DIR=${TEST_RUN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/test-servers}
source "$ROOT/deploy/local/lib.sh"

: "${TEST_NATS_PORT:=14222}" "${TEST_NATS_MONITOR_PORT:=18222}"
: "${TEST_CLICKHOUSE_HTTP_PORT:=18123}" "${TEST_CLICKHOUSE_TCP_PORT:=19000}"

case "${1:-}" in
  start)
    ensure_packages
    stop_process nats
    stop_process clickhouse
    rm -rf "$RUN_DIR"
    start_nats "$TEST_NATS_PORT" "$TEST_NATS_MONITOR_PORT"
    start_clickhouse "$TEST_CLICKHOUSE_HTTP_PORT" "$TEST_CLICKHOUSE_TCP_PORT"
    log "test servers up: NATS 127.0.0.1:$TEST_NATS_PORT, ClickHouse 127.0.0.1:$TEST_CLICKHOUSE_HTTP_PORT"
    echo "export CHAUKAS_TEST_NATS_URL=nats://127.0.0.1:$TEST_NATS_PORT"
    echo "export CHAUKAS_TEST_CLICKHOUSE_URL=http://127.0.0.1:$TEST_CLICKHOUSE_HTTP_PORT"
    ;;
  stop)
    stop_process clickhouse
    stop_process nats
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
