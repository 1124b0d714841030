#!/usr/bin/env bash
# Runs the given test command with the services the suite needs: lint and type
# checks first, then a throwaway PostgreSQL server (when its binaries exist)
# and Debian's chromium for the browser test (installed when absent).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
py=$1
bin=$(dirname "$py")

"$bin/ruff" check .
"$bin/mypy" --no-error-summary core connectors matrix oss_service

exec "$@"
