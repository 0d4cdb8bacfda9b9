#!/usr/bin/env bash
# `make chaos`: the fault-injection checker (tests/src/chaos) over many seeds, on servers of
# its own (other ports and state than `make test`'s, so both can run) that it always stops.
# SEEDS (default 300) seeds, PARALLEL (3) at a time, from BASE_SEED (default: the clock).
# The binaries under test are copied first, so rebuilding while it runs changes nothing.
# Output, with the summary line and every failing seed's schedule, goes to
# bench/results/chaos-<time>.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
SEEDS=${SEEDS:-300}
PARALLEL=${PARALLEL:-3}
BASE_SEED=${BASE_SEED:-$(( $(date +%s) % 1000000 * 1000 ))}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK="$TARGET/chaos"
mkdir -p bench/results "$WORK"
OUT="$ROOT/bench/results/chaos-$(date -u +%Y%m%dT%H%M%SZ).txt"

test_binary=$(cargo test --quiet -p chaukas --test chaos --no-run --message-format=json \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "chaos" and m.get("executable"):
        print(m["executable"])')
cp "$test_binary" "$WORK/chaos-test.new" && mv -f "$WORK/chaos-test.new" "$WORK/chaos-test"
cp "$TARGET/debug/chaukas" "$WORK/chaukas.new" && mv -f "$WORK/chaukas.new" "$WORK/chaukas"

export TEST_RUN_DIR="$WORK/servers" TEST_NATS_PORT=34222 TEST_NATS_MONITOR_PORT=38222
export TEST_CLICKHOUSE_HTTP_PORT=38123 TEST_CLICKHOUSE_TCP_PORT=39000
trap 'bash tests/harness/servers.sh stop' EXIT
eval "$(bash tests/harness/servers.sh start)"

echo "chaos: $SEEDS seeds from $BASE_SEED, $PARALLEL at a time; output in $OUT"
CHAUKAS_CHAOS_BINARY="$WORK/chaukas" CHAUKAS_CHAOS_SEEDS=$SEEDS \
  CHAUKAS_CHAOS_PARALLEL=$PARALLEL CHAUKAS_CHAOS_BASE_SEED=$BASE_SEED \
  "$WORK/chaos-test" --nocapture > "$OUT" 2>&1 || true
grep -E '^chaos summary|VIOLATION|FAIL ' "$OUT" || true
grep -q '^chaos summary: .* 0 failed' "$OUT"
