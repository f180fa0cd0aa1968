#!/usr/bin/env bash
# Starts (up) or stops (down) a moto server that stands in for the EC2 API in
# the integration tests, with its pid and log under DIR:
#
#   scripts/test-env-ec2.sh up DIR     # prints AWS_ENDPOINT_URL=http://127.0.0.1:PORT
#   scripts/test-env-ec2.sh down DIR
#
# "up" installs moto[server] with pip when it is missing, starts moto_server
# on a free loopback port, waits for it, warms it with one EC2 call (the first
# one loads moto's EC2 backend, which takes seconds) and resets its state. It
# is idempotent: a second "up" on a live DIR prints the URL again.
#
# moto takes any credentials, but it picks the service from the credential
# scope of the Authorization header: a request without one is taken for S3.
# A plain-HTTP EC2 call therefore looks like:
#
#   curl -s -X POST "$AWS_ENDPOINT_URL/" \
#     -H 'Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0' \
#     -H 'Content-Type: application/x-www-form-urlencoded' \
#     --data 'Action=RunInstances&Version=2016-11-15&ImageId=ami-12c6146b&MinCount=1&MaxCount=1&InstanceType=t2.micro'
#
# and POST $AWS_ENDPOINT_URL/moto-api/reset clears all state.
set -euo pipefail

READY_TIMEOUT="${MOTO_READY_TIMEOUT:-60}"

usage() {
    echo "usage: $0 up|down DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
action="$1"
mkdir -p "$2"
DIR="$(cd "$2" && pwd -P)"
PIDFILE="$DIR/moto.pid"
PORTFILE="$DIR/moto.port"
LOG="$DIR/moto.log"

log() { echo "test-env-ec2: $*" >&2; }

# The pid in DIR/moto.pid, if that process is alive and is a moto server
# (not a later process that got the same pid).
live_pid() {
    [ -s "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q moto || return 1
    echo "$pid"
}

ensure_moto() {
    if python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null && moto_bin >/dev/null; then
        return 0
    fi
    log "installing moto[server]"
    python3 -m pip install -q 'moto[server]' >&2
    moto_bin >/dev/null || { log "moto_server not found after pip install"; exit 1; }
}

# moto_server next to the python3 in use (skips pyenv's shims), else on PATH.
moto_bin() {
    local b
    b="$(python3 -c 'import os, sys; print(os.path.join(os.path.dirname(sys.executable), "moto_server"))')"
    if [ -x "$b" ]; then
        echo "$b"
    else
        command -v moto_server
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A POST with a dummy SigV4 header whose scope names ec2 in us-east-1.
ec2_call() {
    local url="$1" body="$2"
    python3 - "$url" "$body" <<'EOF'
import sys, urllib.request
url, body = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url + "/", data=body.encode(), method="POST", headers={
    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    "X-Amz-Date": "20240101T000000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/ec2/aws4_request, "
                     "SignedHeaders=content-type;host;x-amz-date, Signature=0",
})
with urllib.request.urlopen(req, timeout=60) as r:
    sys.stdout.write(r.read().decode())
EOF
}

http_ok() {
    python3 - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
EOF
}

start_once() {
    local port="$1" bin
    bin="$(moto_bin)"
    : >"$LOG"
    setsid "$bin" -H 127.0.0.1 -p "$port" </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    echo "$port" >"$PORTFILE"
    local pid deadline=$((SECONDS + READY_TIMEOUT))
    pid="$(cat "$PIDFILE")"
    until http_ok "http://127.0.0.1:$port/moto-api/"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "moto_server exited; tail of $LOG:"
            tail -n 20 "$LOG" >&2 || true
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "moto_server not answering after ${READY_TIMEOUT}s; tail of $LOG:"
            tail -n 20 "$LOG" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

# EXIT trap of "up": stop what it started when it fails half way.
cleanup_on_failure() {
    local rc=$?
    [ "$rc" -eq 0 ] || down
    exit "$rc"
}

up() {
    if live_pid >/dev/null && [ -s "$PORTFILE" ] \
        && http_ok "http://127.0.0.1:$(cat "$PORTFILE")/moto-api/"; then
        echo "AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$PORTFILE")"
        return 0
    fi
    down
    ensure_moto
    trap cleanup_on_failure EXIT
    # The port can be taken between choosing it and moto binding it: retry.
    local try port
    for try in 1 2 3; do
        port="$(free_port)"
        if start_once "$port"; then
            break
        fi
        down
        [ "$try" -lt 3 ] || exit 1
    done
    local url="http://127.0.0.1:$port" out
    out="$(ec2_call "$url" 'Action=DescribeInstances&Version=2016-11-15')" || {
        log "warm-up DescribeInstances failed; tail of $LOG:"
        tail -n 20 "$LOG" >&2
        exit 1
    }
    case "$out" in
    *DescribeInstancesResponse*) ;;
    *)
        log "unexpected answer to DescribeInstances: ${out:0:300}"
        exit 1
        ;;
    esac
    python3 - "$url/moto-api/reset" <<'EOF'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b"", method="POST"), timeout=30).read()
EOF
    trap - EXIT
    echo "AWS_ENDPOINT_URL=$url" >"$DIR/ec2.env"
    echo "AWS_ENDPOINT_URL=$url"
}

down() {
    local pid
    if pid="$(live_pid)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "moto_server $pid did not stop: KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$PIDFILE"
}

case "$action" in
up) up ;;
down) down ;;
*) usage ;;
esac
