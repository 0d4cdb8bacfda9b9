#!/usr/bin/env bash
# What the console's browser test needs (crates/cli/tests/console.rs): Debian's Chromium
# (installed when running as root, like the test servers) and playwright-core from the
# lockfile — never a browser download of Playwright's own.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Installed again whenever the lockfile changed since the last install.
if ! cmp -s "$HERE/package-lock.json" "$HERE/node_modules/.installed-lock" 2>/dev/null; then
  (cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts --silent)
  cp "$HERE/package-lock.json" "$HERE/node_modules/.installed-lock"
fi
