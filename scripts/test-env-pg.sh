#!/usr/bin/env bash
# Starts (up) or stops (down) a throwaway PostgreSQL for the team-mode tests,
# with its data directory on /dev/shm (it starts in under a second there):
#
#   scripts/test-env-pg.sh up DIR     # prints DATABASE_URL=postgres://…
#   scripts/test-env-pg.sh down DIR
#   scripts/test-env-pg.sh crash DIR  # pg_ctl -m immediate stop (a crash)
#   scripts/test-env-pg.sh start DIR  # start the same cluster again
#
# "up" installs Debian's postgresql when it is missing, runs initdb as the
# `postgres` user (initdb refuses root) with trust authentication on
# 127.0.0.1 only, picks a free port and waits until the server takes
# connections. It is idempotent: a second "up" on a live DIR prints the URL
# again. DIR keeps the port, the log and a link to the data directory.
set -euo pipefail

usage() {
    echo "usage: $0 up|down|crash|start DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
action="$1"
mkdir -p "$2"
DIR="$(cd "$2" && pwd -P)"

log() { echo "test-env-pg: $*" >&2; }

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    printf '%s' "$d"
}

install() {
    if [ -z "$(bindir)" ]; then
        log "installing Debian's postgresql"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends postgresql >&2
    fi
    [ -n "$(bindir)" ] || {
        log "no PostgreSQL server binaries after installing"
        exit 1
    }
}

# Runs a server binary as the postgres user (or as this user when it is
# not root).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

data_dir() {
    # One data directory per DIR, in shared memory (OPSGATE_PG_DATA_ROOT
    # puts it elsewhere: a disk, to measure what a flush costs).
    printf '%s/opsgate-pg-%s' "${OPSGATE_PG_DATA_ROOT:-/dev/shm}" "$(printf '%s' "$DIR" | sha256sum | cut -c1-12)"
}

# A CA of its own (DIR/ca.crt, for sslrootcert) and a server certificate it
# signs for the name `localhost` only: a client that checks names reaches
# it as localhost, and is refused as 127.0.0.1.
tls_files() {
    local data="$1"
    command -v openssl >/dev/null || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends openssl >&2
    }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 3650 -subj "/CN=opsgate test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$data/ca.key" -out "$DIR/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$data/server.key" -out "$data/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$data/server.ext"
    openssl x509 -req -in "$data/server.csr" -CA "$DIR/ca.crt" -CAkey "$data/ca.key" \
        -CAcreateserial -days 3650 -extfile "$data/server.ext" -out "$data/server.crt" 2>/dev/null
    chmod 600 "$data/server.key" "$data/ca.key"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$data"/server.* "$data"/ca.* || true
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

url() {
    printf 'DATABASE_URL=postgres://postgres@127.0.0.1:%s/postgres\n' "$(cat "$DIR/port")"
}

running() {
    local data
    data=$(data_dir)
    [ -f "$data/postmaster.pid" ] && as_pg "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
    local data
    data=$(data_dir)
    # The log lives with the data: the postgres user may not write in DIR
    # (under root's home, say); DIR/server.log links to it.
    as_pg "$(bindir)/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
        -o "-p $(cat "$DIR/port") -k $data" start >&2
}

case "$action" in
up)
    install
    data=$(data_dir)
    if running; then
        url
        exit 0
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        rm -rf "$data"
        mkdir -p "$data"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
        as_pg "$(bindir)/initdb" -D "$data" -A trust -U postgres --no-sync >"$DIR/initdb.log" 2>&1 || {
            cat "$DIR/initdb.log" >&2
            exit 1
        }
        tls_files "$data"
        cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
max_connections = 200
fsync = on
synchronous_commit = on
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
        ln -sfn "$data" "$DIR/data"
    fi
    [ -f "$DIR/port" ] || free_port >"$DIR/port"
    ln -sfn "$data/server.log" "$DIR/server.log"
    start
    url
    ;;
start)
    running || start
    url
    ;;
crash)
    as_pg "$(bindir)/pg_ctl" -D "$(data_dir)" -m immediate stop >&2 || true
    ;;
down)
    if [ -n "$(bindir)" ] && running; then
        as_pg "$(bindir)/pg_ctl" -D "$(data_dir)" -m fast -w stop >&2 || true
    fi
    rm -rf "$(data_dir)"
    rm -f "$DIR/data" "$DIR/server.log"
    ;;
*)
    usage
    ;;
esac
