#!/usr/bin/env bash
# `make up` / `make down` / `make status`: the whole Chaukas stack on this machine without
# Docker. NATS and ClickHouse come from Debian packages (installed when running as root),
# the services from this checkout's `chaukas` binary; all state lives under .run/.
#
# Ports (override with the environment variables of the same name):
#   gateway gRPC 50051, gateway HTTP 8080, OTLP/gRPC 4317, OTLP/HTTP 4318 (the gateway's
#   gRPC and HTTP again, on OpenTelemetry's usual ports), writer health 8081, query gRPC 50052,
#   query health 8082, NATS 4222 (monitoring 8222), ClickHouse HTTP 8123 (native 9000).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
source "$ROOT/deploy/local/lib.sh"

: "${NATS_PORT:=4222}" "${NATS_MONITOR_PORT:=8222}"
: "${CLICKHOUSE_HTTP_PORT:=8123}" "${CLICKHOUSE_TCP_PORT:=9000}"
: "${GATEWAY_GRPC_PORT:=50051}" "${GATEWAY_HTTP_PORT:=8080}"
: "${OTLP_GRPC_PORT:=4317}" "${OTLP_HTTP_PORT:=4318}"
: "${WRITER_HTTP_PORT:=8081}" "${QUERY_GRPC_PORT:=50052}" "${QUERY_HTTP_PORT:=8082}"
: "${CARGO_PROFILE:=release}"

SERVICES=(gateway writer query)

chaukas_bin() {
  local dir=$CARGO_PROFILE
  [ "$CARGO_PROFILE" = dev ] && dir=debug
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/$dir/chaukas"
}

# local_secret NAME: a random secret kept in $RUN_DIR/secrets/NAME (made on first use), so
# the internal hops of the local stack are authenticated like a deployment's.
local_secret() {
  local file="$RUN_DIR/secrets/$1"
  if [ ! -s "$file" ]; then
    mkdir -p "$RUN_DIR/secrets"
    chmod 700 "$RUN_DIR/secrets"
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file")
  fi
  cat "$file"
}

# role_env ROLE: the ClickHouse user of ROLE (migrate, writer, query), as env assignments.
role_env() {
  echo "CHAUKAS_CLICKHOUSE__USER=chaukas_$1" "CHAUKAS_CLICKHOUSE__PASSWORD=$(local_secret "clickhouse-$1")"
}

# One environment for every service, so they agree on where NATS and ClickHouse are and on
# the credentials of the internal hops.
service_env() {
  export CHAUKAS_NATS__USER=chaukas CHAUKAS_NATS__PASSWORD="$(local_secret nats)"
  export CHAUKAS_GATEWAY__QUERY_TOKEN="$(local_secret internal-token)"
  export CHAUKAS_QUERY__INTERNAL_TOKEN="$CHAUKAS_GATEWAY__QUERY_TOKEN"
  export CHAUKAS_NATS__URL="nats://127.0.0.1:$NATS_PORT"
  export CHAUKAS_CLICKHOUSE__URL="http://127.0.0.1:$CLICKHOUSE_HTTP_PORT"
  export CHAUKAS_GATEWAY__GRPC_LISTEN="0.0.0.0:$GATEWAY_GRPC_PORT"
  export CHAUKAS_GATEWAY__HTTP_LISTEN="0.0.0.0:$GATEWAY_HTTP_PORT"
  export CHAUKAS_GATEWAY__OTLP_GRPC_LISTEN="0.0.0.0:$OTLP_GRPC_PORT"
  export CHAUKAS_GATEWAY__OTLP_HTTP_LISTEN="0.0.0.0:$OTLP_HTTP_PORT"
  # Internal ports (the query service, health and metrics of writer and query) stay on
  # loopback: only the gateway is meant to be reached from elsewhere.
  export CHAUKAS_WRITER__HTTP_LISTEN="127.0.0.1:$WRITER_HTTP_PORT"
  export CHAUKAS_QUERY__GRPC_LISTEN="127.0.0.1:$QUERY_GRPC_PORT"
  export CHAUKAS_GATEWAY__QUERY_ENDPOINT="http://127.0.0.1:$QUERY_GRPC_PORT"
  # A laptop: requests without a Chaukas key are let through (the gateway warns loudly);
  # a real key, such as the development key below, is still checked.
  export CHAUKAS_GATEWAY__ALLOW_UNAUTHENTICATED="${CHAUKAS_GATEWAY__ALLOW_UNAUTHENTICATED:-true}"
  export CHAUKAS_QUERY__HTTP_LISTEN="127.0.0.1:$QUERY_HTTP_PORT"
  # The audit log's signing key (docs/audit.md): writers sign checkpoints with it, the
  # query service serves its verifier key.
  export CHAUKAS_LOG__SIGNING_KEY_FILE="$RUN_DIR/secrets/log-signing-key"
  # The writer's scratch tables in a database of their own, made and dropped by a user
  # confined to it, so the writer's own user is insert-only (docs/privacy.md).
  export CHAUKAS_WRITER__SCRATCH_DATABASE=chaukas_scratch CHAUKAS_WRITER__SCRATCH_USER=chaukas_scratch
  export CHAUKAS_WRITER__SCRATCH_PASSWORD="$(local_secret clickhouse-scratch)"
}

# The audit log's signing key, made once per $RUN_DIR with `chaukas log keygen`.
log_key() {
  local bin=$1 file="$RUN_DIR/secrets/log-signing-key"
  if [ ! -s "$file" ]; then
    mkdir -p "$RUN_DIR/secrets"
    chmod 700 "$RUN_DIR/secrets"
    (umask 077; "$bin" log keygen --name chaukas.localhost > "$file" 2>/dev/null)
    log "made the audit log's signing key: $file"
  fi
}

up() {
  ensure_packages
  log "building chaukas ($CARGO_PROFILE profile)"
  (cd "$ROOT" && cargo build --profile "$CARGO_PROFILE" -p chaukas --quiet)
  local bin
  bin=$(chaukas_bin)

  log "starting NATS JetStream on 127.0.0.1:$NATS_PORT"
  start_nats "$NATS_PORT" "$NATS_MONITOR_PORT" chaukas "$(local_secret nats)"
  log "starting ClickHouse on 127.0.0.1:$CLICKHOUSE_HTTP_PORT"
  start_clickhouse "$CLICKHOUSE_HTTP_PORT" "$CLICKHOUSE_TCP_PORT" \
    "$(local_secret clickhouse-migrate)" "$(local_secret clickhouse-writer)" \
    "$(local_secret clickhouse-query)" "$(local_secret clickhouse-scratch)"

  service_env
  log_key "$bin"
  write_cli_env
  log "applying migrations: ClickHouse schema, NATS streams and buckets"
  env $(role_env migrate) "$bin" migrate >>"$RUN_DIR/logs/migrate.log" 2>&1 || {
    tail -n 20 "$RUN_DIR/logs/migrate.log" >&2
    die "migrations failed; log: $RUN_DIR/logs/migrate.log"
  }

  local service
  for service in "${SERVICES[@]}"; do
    case $service in
      writer|query) start_process "$service" env $(role_env "$service") "$bin" "$service" ;;
      *) start_process "$service" "$bin" "$service" ;;
    esac
  done
  wait_for gateway 30 "$bin" healthcheck --grpc "http://127.0.0.1:$GATEWAY_GRPC_PORT"
  wait_for gateway 30 curl -fsS "http://127.0.0.1:$GATEWAY_HTTP_PORT/readyz"
  wait_writer_ready
  wait_for query 30 "$bin" healthcheck --server-only --grpc "http://127.0.0.1:$QUERY_GRPC_PORT"
  wait_for query 30 curl -fsS "http://127.0.0.1:$QUERY_HTTP_PORT/readyz"
  dev_key "$bin"

  cat <<TEXT

Chaukas Server is up.
  gRPC (ChaukasServerService, ChaukasClientService)  127.0.0.1:$GATEWAY_GRPC_PORT
  HTTP (chaukas-sdk: CHAUKAS_ENDPOINT)               http://localhost:$GATEWAY_HTTP_PORT
  OpenTelemetry (OTEL_EXPORTER_OTLP_ENDPOINT)        gRPC http://localhost:$OTLP_GRPC_PORT, HTTP http://localhost:$OTLP_HTTP_PORT
  query service gRPC (internal)                      127.0.0.1:$QUERY_GRPC_PORT
  health: http://localhost:$GATEWAY_HTTP_PORT/readyz  http://localhost:$WRITER_HTTP_PORT/readyz  http://localhost:$QUERY_HTTP_PORT/readyz
  NATS nats://127.0.0.1:$NATS_PORT   ClickHouse http://127.0.0.1:$CLICKHOUSE_HTTP_PORT (database chaukas)
  development API key (tenant dev, all scopes): $(cat "$DEV_KEY_FILE")   (also in $DEV_KEY_FILE)
  audit log verifier key: $(curl -fsS -H "Authorization: Bearer $(cat "$DEV_KEY_FILE")" "http://127.0.0.1:$GATEWAY_HTTP_PORT/v1/log/key" 2>/dev/null || echo "(GET /v1/log/key)")
  logs and data: $RUN_DIR    stop everything: make down
TEXT
}

wait_writer_ready() {
  wait_for writer 30 curl -fsS "http://127.0.0.1:$WRITER_HTTP_PORT/readyz"
}

# restart-writer: stops the writer (it stores what it holds and hands its leases back) and
# starts it again with this shell's environment; `make bench` runs it with
# CHAUKAS_LOG__ENABLED=false and =true to measure what the audit log costs.
restart_writer() {
  local bin
  bin=$(chaukas_bin)
  service_env
  stop_process writer
  start_process writer env $(role_env writer) "$bin" writer
  wait_writer_ready
}

# $RUN_DIR/cli.env: what `chaukas keys ...` and `chaukas migrate` need to reach this stack
# (`set -a; source .run/cli.env; set +a`).
write_cli_env() {
  (umask 077; {
    echo "CHAUKAS_NATS__URL=$CHAUKAS_NATS__URL"
    echo "CHAUKAS_NATS__USER=$CHAUKAS_NATS__USER"
    echo "CHAUKAS_NATS__PASSWORD=$CHAUKAS_NATS__PASSWORD"
    echo "CHAUKAS_CLICKHOUSE__URL=$CHAUKAS_CLICKHOUSE__URL"
    echo "CHAUKAS_LOG__SIGNING_KEY_FILE=$CHAUKAS_LOG__SIGNING_KEY_FILE"
    role_env migrate | tr ' ' '\n'
  } > "$RUN_DIR/cli.env")
}

# The development key: created once per NATS data directory, kept in $DEV_KEY_FILE.
DEV_KEY_FILE=$RUN_DIR/dev-api-key
dev_key() {
  local bin=$1 id listing
  if [ -s "$DEV_KEY_FILE" ]; then
    id=$(sed -E 's/^chk_([0-9a-f]{12})_.*/\1/' "$DEV_KEY_FILE")
    # The listing is read whole first: `keys list | grep -q` fails under pipefail once grep
    # stops reading early (SIGPIPE), which made every start create another key.
    listing=$("$bin" keys list 2>/dev/null || true)
    if grep -q "^$id  active" <<<"$listing"; then
      return 0
    fi
  fi
  log "creating the development API key (tenant dev; scopes ingest, query, stats)"
  "$bin" keys create --tenant dev --scopes ingest,query,stats --name "make up development key" --quiet \
    > "$DEV_KEY_FILE.new" 2>>"$RUN_DIR/logs/keys.log" || die "cannot create the development key; log: $RUN_DIR/logs/keys.log"
  mv "$DEV_KEY_FILE.new" "$DEV_KEY_FILE"
  chmod 600 "$DEV_KEY_FILE"
}

down() {
  local service
  for service in "${SERVICES[@]}"; do stop_process "$service"; done
  stop_process clickhouse
  stop_process nats
  log "stack stopped"
}

status() {
  local name
  for name in nats clickhouse "${SERVICES[@]}"; do
    if is_running "$name"; then
      echo "$name: running (pid $(cat "$(pid_file "$name")"))"
    else
      echo "$name: stopped"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  restart-writer) restart_writer ;;
  *) echo "usage: $0 up|down|status|restart-writer" >&2; exit 2 ;;
esac
