#!/usr/bin/env bash
# `make lint-deploy`: the chart and docker-compose.yml validated offline (tests/deploy/lint.py),
# then the tests proving the lint fails on broken copies. Tools come from PyPI into a throwaway
# virtualenv under target/deploy-lint.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${CARGO_TARGET_DIR:-$ROOT/target}/deploy-lint
command -v python3 >/dev/null || { echo "python3 is required (apt-get install python3 python3-venv)" >&2; exit 1; }
if [ ! -x "$DIR/venv/bin/python" ]; then
  python3 -m venv "$DIR/venv" || { echo "cannot create a virtualenv: apt-get install python3-venv" >&2; exit 1; }
fi
"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tests/deploy/requirements.txt"
"$DIR/venv/bin/python" "$ROOT/tests/deploy/lint.py"
"$DIR/venv/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/deploy"
