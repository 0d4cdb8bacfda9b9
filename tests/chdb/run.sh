#!/usr/bin/env bash
# Current ClickHouse, in-process (PyPI's chdb-core: no server can run here): the schema's
# migrations and the write-once settings the deployment relies on (tests/chdb/check.py).
# Usage: run.sh DIR (the virtualenv goes to DIR/venv and is kept between runs).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${1:?usage: run.sh DIR}
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "python3 is required (apt-get install python3 python3-venv)" >&2; exit 1; }
WANT=$(cat "$HERE/requirements.txt")
if [ "$(cat "$DIR/installed" 2>/dev/null)" != "$WANT" ]; then
    rm -rf "$DIR/venv"
    mkdir -p "$DIR"
    "$PYTHON" -m venv "$DIR/venv" || { echo "cannot create a virtualenv: apt-get install python3-venv" >&2; exit 1; }
    "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    echo "$WANT" > "$DIR/installed"
fi
"$DIR/venv/bin/python" "$HERE/check.py" "$HERE/../../crates/store/migrations"
