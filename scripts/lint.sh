#!/usr/bin/env bash
# The static checks: ruff, mypy and import-linter's contracts (pyproject.toml [tool.importlinter]).
# mypy and lint-imports see the package laid out as it installs (scripts/installed_layout.py), so that
# the imports between core/, matrix/, connectors/ and oss_service/ are followed, not taken as unknown.
# Usage: scripts/lint.sh BIN (the virtual environment's bin folder).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bin=$1

"$bin/ruff" check .
"$bin/python" scripts/installed_layout.py "$bin/mypy" --no-error-summary -p cartstatus
"$bin/python" scripts/installed_layout.py "$bin/lint-imports" --no-logo --no-cache
