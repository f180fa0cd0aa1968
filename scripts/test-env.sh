#!/usr/bin/env bash
# The real servers the backend tests talk to, all on 127.0.0.1:
#
#   EC2         moto_server (PyPI moto[server])          scripts/test-env-ec2.sh
#   Docker      dockerd + containerd (Debian docker.io)   scripts/test-env-docker.sh
#   Kubernetes  etcd + kube-apiserver v1.20 built from    scripts/test-env-kube.sh
#               Debian's kubernetes source package
#   PostgreSQL  Debian's postgresql, data on /dev/shm     scripts/test-env-pg.sh
#
#   scripts/test-env.sh up [DIR]     start them; writes DIR/env
#   scripts/test-env.sh down [DIR]   stop them
#
# DIR defaults to ~/.cache/opsgate/test-env. DIR/env holds the lines the
# tests read (source it, or let scripts/test.sh do it):
#
#   export OPSGATE_TEST_EC2_ENDPOINT=http://127.0.0.1:PORT
#   export OPSGATE_TEST_DOCKER_HOST=unix://…/docker.sock
#   export OPSGATE_TEST_KUBECONFIG=…/kubeconfig
#   export OPSGATE_TEST_PG_URL=postgres://postgres@127.0.0.1:PORT/postgres
#
# Each server's script installs what it needs (apt, pip) the first time.
# A server that cannot start is reported and left out of DIR/env, and its
# tests skip loudly; with OPSGATE_REQUIRE_BACKENDS set (as .ci/run sets it)
# this script fails instead, and so would the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="${1:-}"
dir="${2:-${OPSGATE_TEST_ENV:-$HOME/.cache/opsgate/test-env}}"

case "$cmd" in
up)
    mkdir -p "$dir"
    env_file="$dir/env"
    : >"$env_file.new"
    failed=()
    # name, script, the KEY= its `up` prints, the variable the tests read
    for spec in "ec2 AWS_ENDPOINT_URL OPSGATE_TEST_EC2_ENDPOINT" \
        "docker DOCKER_HOST OPSGATE_TEST_DOCKER_HOST" \
        "kube KUBECONFIG OPSGATE_TEST_KUBECONFIG" \
        "pg DATABASE_URL OPSGATE_TEST_PG_URL"; do
        read -r name key var <<<"$spec"
        start=$(date +%s)
        if out=$("./scripts/test-env-$name.sh" up "$dir/$name" 2>"$dir/$name.up.log"); then
            value=$(printf '%s\n' "$out" | sed -n "s/^$key=//p" | tail -1)
            if [ -n "$value" ]; then
                printf 'export %s=%q\n' "$var" "$value" >>"$env_file.new"
                echo "test-env: $name up in $(($(date +%s) - start))s: $var=$value" >&2
                continue
            fi
        fi
        echo "test-env: $name did not start; its log:" >&2
        tail -n 30 "$dir/$name.up.log" >&2 || true
        failed+=("$name")
    done
    if grep -q OPSGATE_TEST_EC2_ENDPOINT "$env_file.new"; then
        # moto takes any credentials; the SDK's chain wants some.
        printf 'export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n' >>"$env_file.new"
    fi
    mv "$env_file.new" "$env_file"
    if [ "${#failed[@]}" -gt 0 ]; then
        if [ -n "${OPSGATE_REQUIRE_BACKENDS:-}" ]; then
            echo "test-env: ${failed[*]} failed to start, and OPSGATE_REQUIRE_BACKENDS is set" >&2
            exit 1
        fi
        echo "test-env: ${failed[*]} failed to start: their tests will be skipped" >&2
    fi
    echo "$env_file"
    ;;
down)
    for name in pg kube docker ec2; do
        if [ -d "$dir/$name" ]; then
            "./scripts/test-env-$name.sh" down "$dir/$name" >/dev/null 2>&1 || true
        fi
    done
    ;;
*)
    echo "usage: $0 up|down [DIR]" >&2
    exit 2
    ;;
esac
