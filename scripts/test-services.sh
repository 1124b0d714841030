#!/usr/bin/env bash
# Runs the given test command with the services the suite needs: the static
# checks first (scripts/lint.sh: ruff, mypy, import-linter's contracts), then a
# throwaway PostgreSQL server (when its binaries exist) and Debian's chromium
# for the browser test (installed when absent).
#
# It sets CARTSTATUS_SERVICES=1: a test whose service is missing then FAILS
# instead of skipping (see tests/services.py), and exports the server's URL as
# CARTSTATUS_TEST_POSTGRES_URL. The server is stopped and removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
py=$1
bin=$(dirname "$py")

"$here/scripts/lint.sh" "$bin"

export CARTSTATUS_SERVICES=1

# -- Chromium for the browser test (Debian's packages; never a downloaded browser)
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "test-services: installing chromium and chromium-driver with apt-get" >&2
    as_root=""
    [ "$(id -u)" -ne 0 ] && as_root="sudo -n"
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        chromium chromium-driver >/dev/null \
        || echo "test-services: could not install chromium; the browser test will fail" >&2
fi

# -- A throwaway PostgreSQL server on a free port under a temporary directory
pg_bin=""
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    pg_bin=$(dirname "$(command -v pg_ctl)")
else
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && pg_bin=$d
    done
fi

pg_dir=""
pg_run=()
cleanup() {
    if [ -n "$pg_dir" ]; then
        "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$pg_bin" ]; then
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/cartstatus-pg.XXXXXX")
    if [ "$(id -u)" -eq 0 ]; then
        # initdb refuses to run as root: run the server as an unprivileged user.
        pg_user=postgres
        id "$pg_user" >/dev/null 2>&1 || pg_user=nobody
        chown "$pg_user" "$pg_dir"
        pg_run=(runuser -u "$pg_user" --)
    fi
    port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if "${pg_run[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U cartstatus --auth=trust -E UTF8 --no-sync \
            >"$pg_dir/initdb.log" 2>&1 \
        && "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
            -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
            start >/dev/null; then
        export CARTSTATUS_TEST_POSTGRES_URL="postgresql://cartstatus@127.0.0.1:$port/postgres"
        echo "test-services: PostgreSQL on 127.0.0.1:$port" >&2
    else
        echo "test-services: PostgreSQL did not start; the postgres tests will fail:" >&2
        tail -5 "$pg_dir/initdb.log" "$pg_dir/server.log" 2>/dev/null >&2 || true
    fi
else
    echo "test-services: no PostgreSQL binaries (initdb, pg_ctl); the postgres tests will fail" >&2
fi

set +e
"$@"
status=$?
exit $status
