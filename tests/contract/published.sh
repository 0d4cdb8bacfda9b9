#!/usr/bin/env bash
# Installs the published chaukas-spec packages into a throwaway virtualenv under DIR and
# dumps their descriptors to DIR/published.binpb.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${1:?usage: published.sh OUTPUT_DIR}
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "python3 is required for the contract test (apt-get install python3 python3-venv)" >&2; exit 1; }

rm -rf "$DIR/venv"
mkdir -p "$DIR"
"$PYTHON" -m venv "$DIR/venv" || { echo "cannot create a virtualenv: apt-get install python3-venv" >&2; exit 1; }
"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
"$DIR/venv/bin/python" "$HERE/dump_published.py" "$DIR/published.binpb"
