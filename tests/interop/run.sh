#!/usr/bin/env bash
# The interop test: the published chaukas-sdk and chaukas-spec-* clients (from PyPI, in a
# throwaway virtualenv) against the real services (this checkout's `chaukas` binary) on the
# test servers. Needs CHAUKAS_TEST_NATS_URL / CHAUKAS_TEST_CLICKHOUSE_URL (run-all.sh sets
# them); uses a database and stream names of its own.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DIR=$TARGET/interop
BIN=$TARGET/debug/chaukas
: "${CHAUKAS_TEST_NATS_URL:?run through make test}" "${CHAUKAS_TEST_CLICKHOUSE_URL:?run through make test}"

rm -rf "$DIR/logs" && mkdir -p "$DIR/logs"
if [ ! -x "$DIR/venv/bin/pytest" ]; then
  python3 -m venv "$DIR/venv"
fi
"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tests/interop/requirements.txt"
(cd "$ROOT" && cargo build --quiet -p chaukas)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GRPC=$(free_port) HTTP=$(free_port) WRITER=$(free_port) QGRPC=$(free_port) QHTTP=$(free_port)
OTLP_GRPC=$(free_port) OTLP_HTTP=$(free_port)
NAME=INTEROP_$$_$RANDOM
export CHAUKAS_NATS__URL=$CHAUKAS_TEST_NATS_URL
export CHAUKAS_NATS__STREAM=${NAME}_EVENTS CHAUKAS_NATS__SUBJECT_PREFIX=${NAME,,}.events
export CHAUKAS_NATS__DEAD_LETTER_STREAM=${NAME}_DLQ CHAUKAS_NATS__DEAD_LETTER_SUBJECT=${NAME,,}.dlq
export CHAUKAS_NATS__MAX_BYTES=268435456
export CHAUKAS_CLICKHOUSE__URL=$CHAUKAS_TEST_CLICKHOUSE_URL CHAUKAS_CLICKHOUSE__DATABASE=${NAME,,}
export CHAUKAS_GATEWAY__GRPC_LISTEN=127.0.0.1:$GRPC CHAUKAS_GATEWAY__HTTP_LISTEN=127.0.0.1:$HTTP
export CHAUKAS_GATEWAY__OTLP_GRPC_LISTEN=127.0.0.1:$OTLP_GRPC CHAUKAS_GATEWAY__OTLP_HTTP_LISTEN=127.0.0.1:$OTLP_HTTP
export CHAUKAS_GATEWAY__QUERY_ENDPOINT=http://127.0.0.1:$QGRPC
export CHAUKAS_WRITER__HTTP_LISTEN=127.0.0.1:$WRITER CHAUKAS_WRITER__MAX_BATCH_AGE_MS=100
export CHAUKAS_QUERY__GRPC_LISTEN=127.0.0.1:$QGRPC CHAUKAS_QUERY__HTTP_LISTEN=127.0.0.1:$QHTTP

"$BIN" migrate > "$DIR/logs/migrate.log" 2>&1
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  curl -fsS "$CHAUKAS_TEST_CLICKHOUSE_URL" --data-binary "DROP DATABASE IF EXISTS ${NAME,,}" >/dev/null || true
}
trap cleanup EXIT
for role in gateway writer query; do
  "$BIN" "$role" > "$DIR/logs/$role.log" 2>&1 &
  pids+=($!)
done
for port in $HTTP $WRITER $QHTTP; do
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { tail -n 20 "$DIR"/logs/*.log; exit 1; }
done

CHAUKAS_INTEROP_GRPC=127.0.0.1:$GRPC CHAUKAS_INTEROP_HTTP=http://127.0.0.1:$HTTP CHAUKAS_INTEROP_BIN=$BIN \
  CHAUKAS_INTEROP_OTLP_GRPC=127.0.0.1:$OTLP_GRPC CHAUKAS_INTEROP_OTLP_HTTP=http://127.0.0.1:$OTLP_HTTP \
  "$DIR/venv/bin/pytest" -q -p no:cacheprovider "$ROOT/tests/interop"
