# Shared by `make up` (deploy/local/stack.sh) and `make test` (tests/harness/servers.sh):
# installs and starts real NATS JetStream and ClickHouse servers as plain processes, with
# all state under one directory, and stops exactly the processes it started.
#
# Every started process writes its pid to $RUN_DIR/pids/NAME.pid; stopping reads only
# those files, so nothing else on the machine is touched.

set -euo pipefail

# Debian packages the stack needs, by the command each provides.
declare -A PACKAGE_OF=(
  [nats-server]=nats-server
  [clickhouse-server]=clickhouse-server
  [curl]=curl
)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs missing packages when root; otherwise names them and stops.
ensure_packages() {
  local missing=() command
  for command in "${!PACKAGE_OF[@]}"; do
    command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("${PACKAGE_OF[$command]}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}"
  fi
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

bin_path() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }

pid_file() { echo "$RUN_DIR/pids/$1.pid"; }

is_running() {
  local file
  file=$(pid_file "$1")
  [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null
}

# start_process NAME COMMAND...: runs COMMAND detached, logging to $RUN_DIR/logs/NAME.log.
start_process() {
  local name=$1; shift
  mkdir -p "$RUN_DIR/pids" "$RUN_DIR/logs"
  if is_running "$name"; then
    log "$name already running (pid $(cat "$(pid_file "$name")"))"
    return 0
  fi
  setsid "$@" >>"$RUN_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pid_file "$name")"
}

# stop_process NAME: SIGTERM, then SIGKILL after 20 s, then forgets the pid.
stop_process() {
  local name=$1 file pid waited=0
  file=$(pid_file "$name")
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 200 ]; do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop within 20 s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

# wait_for NAME SECONDS COMMAND...: polls COMMAND until it succeeds or the process dies.
wait_for() {
  local name=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! is_running "$name"; then
      tail -n 20 "$RUN_DIR/logs/$name.log" >&2 || true
      die "$name exited during startup; log: $RUN_DIR/logs/$name.log"
    fi
    [ $SECONDS -lt $deadline ] || die "$name not healthy after ${seconds}s; log: $RUN_DIR/logs/$name.log"
    sleep 0.2
  done
}

# start_nats PORT MONITOR_PORT [USER PASSWORD]: JetStream with file storage under
# $RUN_DIR/nats; with USER and PASSWORD, clients must authenticate as that user. Messages
# may be up to 8 MiB (NATS's advice for the most), so events larger than the gateway's
# default limit can be let in by configuration alone (docs/console.md); nothing publishes
# more than `nats.max_message_bytes` (1 MiB by default).
start_nats() {
  local port=$1 monitor=$2 auth=()
  [ $# -ge 4 ] && auth=(--user "$3" --pass "$4")
  mkdir -p "$RUN_DIR/nats"
  echo "max_payload: 8388608" > "$RUN_DIR/nats.conf"
  start_process nats "$(bin_path nats-server)" -c "$RUN_DIR/nats.conf" -js -sd "$RUN_DIR/nats" \
    -a 127.0.0.1 -p "$port" -m "$monitor" "${auth[@]}"
  wait_for nats 30 curl -fsS "http://127.0.0.1:$monitor/healthz?js-enabled-only=true"
}

# clickhouse_role_users MIGRATE WRITER QUERY SCRATCH (passwords): users.xml entries for the
# roles, checked on the real 18.16 server (docs/privacy.md, "What each layer enforces"):
# - migrate owns the schema and runs retention (the admin);
# - writer is insert-only: profile chaukas_insert (allow_ddl = 0: no ALTER ... DELETE, DROP,
#   TRUNCATE, DETACH, RENAME, OPTIMIZE, and it cannot turn allow_ddl back on), confined to
#   the events and scratch databases;
# - scratch makes and drops the writer's insert stages and claim lookups, confined to the
#   scratch database (it cannot even read `events`);
# - query is readonly = 2 (reads, and may set per-statement limits; no writes, no DDL).
# All are confined to loopback. The passwordless `default` user is dropped: its password is
# set to a random value nobody is given.
clickhouse_role_users() {
  local migrate=$1 writer=$2 query=$3 scratch=$4 role password profile databases
  local events_db=${CHAUKAS_CLICKHOUSE__DATABASE:-chaukas}
  local scratch_db=${CHAUKAS_WRITER__SCRATCH_DATABASE:-${events_db}_scratch}
  for role in migrate writer query scratch; do
    databases=""
    case $role in
      migrate) password=$migrate profile=default ;;
      writer) password=$writer profile=chaukas_insert
        databases="<database>$events_db</database><database>$scratch_db</database>" ;;
      query) password=$query profile=chaukas_read
        databases="<database>$events_db</database>" ;;
      scratch) password=$scratch profile=default
        databases="<database>$scratch_db</database>" ;;
    esac
    cat <<XML
        <chaukas_$role>
            <password_sha256_hex>$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)</password_sha256_hex>
            <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
            <profile>$profile</profile>
            <quota>default</quota>$([ -n "$databases" ] && echo "
            <allow_databases>$databases</allow_databases>")
        </chaukas_$role>
XML
  done
}

# write_clickhouse_config HTTP_PORT TCP_PORT [MIGRATE WRITER QUERY SCRATCH passwords]: a minimal
# config with data under
# $RUN_DIR/clickhouse and no system log tables (query_log, trace_log, part_log, ... are
# only created when configured), so a long-running laptop stack does not fill the disk.
write_clickhouse_config() {
  local http=$1 tcp=$2 dir="$RUN_DIR/clickhouse" default_password="" role_users=""
  if [ $# -ge 6 ]; then
    default_password="<password_sha256_hex>$(head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1)</password_sha256_hex>"
    role_users=$(clickhouse_role_users "$3" "$4" "$5" "$6")
  else
    default_password="<password></password>"
  fi
  mkdir -p "$dir/etc" "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
  cat > "$dir/etc/config.xml" <<XML
<?xml version="1.0"?>
<!-- Generated by deploy/local/lib.sh; edits are overwritten on the next start. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <http_port>$http</http_port>
    <tcp_port>$tcp</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
XML
  cat > "$dir/etc/users.xml" <<XML
<?xml version="1.0"?>
<!-- Generated by deploy/local/lib.sh: users reachable from loopback only (tests: one
     passwordless default user; make up: one user per role, see clickhouse_role_users). -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <log_queries>0</log_queries>
        </default>
        <chaukas_read>
            <max_memory_usage>4000000000</max_memory_usage>
            <log_queries>0</log_queries>
            <readonly>2</readonly>
        </chaukas_read>
        <chaukas_insert>
            <max_memory_usage>4000000000</max_memory_usage>
            <log_queries>0</log_queries>
            <allow_ddl>0</allow_ddl>
        </chaukas_insert>
    </profiles>
    <users>
$role_users
        <default>
            $default_password
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
}

# start_clickhouse HTTP_PORT TCP_PORT [MIGRATE WRITER QUERY SCRATCH passwords]
start_clickhouse() {
  local http=$1 tcp=$2
  write_clickhouse_config "$@"
  start_process clickhouse "$(bin_path clickhouse-server)" \
    --config-file="$RUN_DIR/clickhouse/etc/config.xml"
  wait_for clickhouse 60 curl -fsS "http://127.0.0.1:$http/ping"
}
