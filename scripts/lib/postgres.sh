# Sourced by scripts/test: a throwaway PostgreSQL server for the PostgreSQL tests.
# start_test_postgres: when GATEWAYD_TEST_DSN is set, use it as is; otherwise create a
# cluster in a temporary directory on a free 127.0.0.1 port, export GATEWAYD_TEST_DSN, and
# remove the cluster when the shell exits (trap). Debian's postgresql is installed when it is
# missing and we are root. Where no server can be had, say so loudly; under CI=true fail.
_pg_dir=""
_pg_ctl=""
_pg_user=""

_pg_bindir() {
    local d
    # Debian keeps initdb/pg_ctl out of PATH, under /usr/lib/postgresql/<version>/bin.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

_pg_as() {
    if [ -n "$_pg_user" ]; then
        runuser -u "$_pg_user" -- "$@"
    else
        "$@"
    fi
}

stop_test_postgres() {
    if [ -n "$_pg_dir" ]; then
        _pg_as "$_pg_ctl" -D "$_pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$_pg_dir"
        _pg_dir=""
    fi
}

_pg_unavailable() {
    echo "!! PostgreSQL tests cannot run: $1" >&2
    echo "!! set GATEWAYD_TEST_DSN=postgresql://... or install Debian's postgresql" >&2
    if [ "${CI:-}" = "true" ]; then
        return 1
    fi
    return 0
}

start_test_postgres() {
    if [ -n "${GATEWAYD_TEST_DSN:-}" ]; then
        echo "== PostgreSQL tests: GATEWAYD_TEST_DSN is set"
        return 0
    fi
    local bin
    if ! bin="$(_pg_bindir)"; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "== installing Debian package postgresql (for the PostgreSQL tests)"
            if [ -z "${_apt_updated:-}" ]; then
                DEBIAN_FRONTEND=noninteractive apt-get update -qq
                _apt_updated=1
            fi
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                postgresql >/dev/null
        fi
        bin="$(_pg_bindir)" || { _pg_unavailable "no initdb/pg_ctl found"; return $?; }
    fi
    _pg_ctl="$bin/pg_ctl"
    _pg_user=""
    if [ "$(id -u)" -eq 0 ]; then
        # PostgreSQL refuses to run as root.
        if id postgres >/dev/null 2>&1; then _pg_user=postgres; else _pg_user=nobody; fi
    fi
    _pg_dir="$(mktemp -d /tmp/gatewayd-pg.XXXXXX)"
    chmod 755 "$_pg_dir"
    [ -n "$_pg_user" ] && chown "$_pg_user" "$_pg_dir"
    trap stop_test_postgres EXIT
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    if ! _pg_as "$bin/initdb" -D "$_pg_dir/data" -U postgres -A trust -E UTF8 --no-sync \
        >"$_pg_dir/initdb.log" 2>&1; then
        cat "$_pg_dir/initdb.log" >&2
        stop_test_postgres
        _pg_unavailable "initdb failed"
        return $?
    fi
    # fsync off: a throwaway test server; sockets only on 127.0.0.1 and in our directory.
    if ! _pg_as "$_pg_ctl" -D "$_pg_dir/data" -l "$_pg_dir/server.log" -w -t 30 \
        -o "-h 127.0.0.1 -p $port -k $_pg_dir -F -c max_connections=200" start >/dev/null; then
        cat "$_pg_dir/server.log" >&2
        stop_test_postgres
        _pg_unavailable "the server did not start"
        return $?
    fi
    export GATEWAYD_TEST_DSN="postgresql://postgres@127.0.0.1:$port/postgres"
    echo "== PostgreSQL tests: throwaway server on 127.0.0.1:$port"
}
