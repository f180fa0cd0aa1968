#!/usr/bin/env bash
# Starts (up) or stops (down) a private Docker daemon for the integration
# tests, with all of its state under DIR:
#
#   scripts/test-env-docker.sh up DIR     # prints DOCKER_HOST=unix://...
#   scripts/test-env-docker.sh down DIR
#
# "up" installs Debian's docker.io and busybox-static when they are missing,
# starts a private containerd and dockerd (no bridge, no iptables: containers
# run with --network none), builds the image opsgate-test/busybox:latest from
# busybox-static (there is no registry to pull from) and checks that a
# container really runs. It is idempotent: a second "up" on a live DIR only
# prints DOCKER_HOST again. Several DIRs can be up at once.
#
# "down" kills the running containers (they stay, stopped), then stops
# dockerd, containerd and any shim left behind (TERM, wait, KILL) and unmounts
# what they left mounted. It deletes nothing under DIR.
#
# Environment: DOCKER (client binary, default: docker on PATH),
# DOCKER_READY_TIMEOUT (seconds, default 60), DOCKER_STORAGE_DRIVER (default:
# overlay2 where the kernel has overlay, else vfs), DOCKER_SKIP_PROBE=1 to
# skip the container probe in "up".
set -euo pipefail

IMAGE="opsgate-test/busybox:latest"
READY_TIMEOUT="${DOCKER_READY_TIMEOUT:-60}"

usage() {
    echo "usage: $0 up|down DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
action="$1"
mkdir -p "$2"
DIR="$(cd "$2" && pwd -P)"

log() { echo "test-env-docker: $*" >&2; }

# A unix socket path must fit in 108 bytes (sun_path). dockerd and containerd
# make sockets in DIR (docker.sock, containerd.sock.ttrpc) and in the
# exec-root (metrics.sock, libnetwork/<id>.sock). When DIR is too long for
# that, sockets and exec-root go into a short directory under /tmp named
# after a hash of DIR, linked from DIR/run.
if [ "${#DIR}" -le 60 ]; then
    SOCKDIR="$DIR"
else
    SOCKDIR="/tmp/og-$(printf '%s' "$DIR" | sha256sum | cut -c1-12)"
    mkdir -p "$SOCKDIR"
    ln -sfn "$SOCKDIR" "$DIR/run"
fi
EXECROOT="$SOCKDIR/exec"
DOCKER_SOCK="$SOCKDIR/docker.sock"
CTD_SOCK="$SOCKDIR/containerd.sock"
DOCKER_PIDFILE="$DIR/docker.pid"
CTD_PIDFILE="$DIR/containerd.pid"

docker_cli() {
    "${DOCKER:-docker}" -H "unix://$DOCKER_SOCK" "$@"
}

pid_alive() {
    local pidfile="$1" pid
    [ -s "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

apt_install() {
    # Another apt may hold the lock: wait for it rather than fail.
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    local i
    for i in $(seq 1 60); do
        if $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq; then
            break
        fi
        log "apt-get update failed (lock held?), retrying ($i)"
        sleep 5
    done
    for i in $(seq 1 10); do
        if $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null; then
            return 0
        fi
        log "apt-get install failed, retrying ($i)"
        sleep 5
    done
    return 1
}

ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v containerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v runc >/dev/null 2>&1 || missing+=(docker.io)
    [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 \
        && dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
    if [ ${#missing[@]} -gt 0 ]; then
        # shellcheck disable=SC2207
        missing=($(printf '%s\n' "${missing[@]}" | sort -u))
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    command -v "${DOCKER:-docker}" >/dev/null 2>&1 || { log "no docker client"; exit 1; }
}

storage_driver() {
    if [ -n "${DOCKER_STORAGE_DRIVER:-}" ]; then
        echo "$DOCKER_STORAGE_DRIVER"
    elif grep -qw overlay /proc/filesystems 2>/dev/null; then
        echo overlay2
    else
        echo vfs
    fi
}

wait_for_socket() {
    local sock="$1" pidfile="$2" what="$3" deadline=$((SECONDS + READY_TIMEOUT))
    while [ ! -S "$sock" ]; do
        if ! pid_alive "$pidfile"; then
            log "$what exited"
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "$what: no socket after ${READY_TIMEOUT}s"
            return 1
        fi
        sleep 0.2
    done
}

start_containerd() {
    mkdir -p "$DIR/root/containerd" "$EXECROOT/containerd"
    # Its own config so that it never reads /etc/containerd/config.toml and
    # never shares anything with a system containerd.
    cat >"$DIR/containerd.toml" <<EOF
version = 2
root = "$DIR/root/containerd"
state = "$EXECROOT/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$CTD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
    rm -f "$CTD_SOCK" "$CTD_SOCK.ttrpc"
    # setsid: the daemon outlives this script and ignores its terminal.
    setsid containerd --config "$DIR/containerd.toml" \
        </dev/null >>"$DIR/containerd.log" 2>&1 &
    echo $! >"$CTD_PIDFILE"
    if ! wait_for_socket "$CTD_SOCK" "$CTD_PIDFILE" containerd; then
        tail -n 40 "$DIR/containerd.log" >&2 || true
        exit 1
    fi
}

start_dockerd() {
    mkdir -p "$DIR/root" "$EXECROOT"
    rm -f "$DOCKER_SOCK"
    # --config-file: an empty one, so /etc/docker/daemon.json is not read.
    [ -f "$DIR/daemon.json" ] || echo '{}' >"$DIR/daemon.json"
    setsid dockerd \
        --config-file "$DIR/daemon.json" \
        --host "unix://$DOCKER_SOCK" \
        --containerd "$CTD_SOCK" \
        --containerd-namespace moby \
        --containerd-plugins-namespace plugins.moby \
        --data-root "$DIR/root" \
        --exec-root "$EXECROOT" \
        --pidfile "$DOCKER_PIDFILE" \
        --storage-driver "$(storage_driver)" \
        --exec-opt native.cgroupdriver=cgroupfs \
        --bridge none --iptables=false --ip6tables=false --ip-masq=false \
        --userland-proxy=false \
        </dev/null >>"$DIR/dockerd.log" 2>&1 &
    local pid=$!
    # dockerd writes the pidfile itself, but only once it is under way.
    echo "$pid" >"$DIR/dockerd.launch.pid"
    local deadline=$((SECONDS + READY_TIMEOUT))
    until docker_cli info >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited; tail of $DIR/dockerd.log:"
            grep -v "\[core\]" "$DIR/dockerd.log" | tail -n 30 >&2 || true
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "dockerd not ready after ${READY_TIMEOUT}s; tail of $DIR/dockerd.log:"
            grep -v "\[core\]" "$DIR/dockerd.log" | tail -n 30 >&2 || true
            exit 1
        fi
        sleep 0.3
    done
    [ -s "$DOCKER_PIDFILE" ] || echo "$pid" >"$DOCKER_PIDFILE"
}

build_image() {
    if docker_cli image inspect "$IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    local rootfs
    rootfs="$(mktemp -d "${TMPDIR:-/tmp}/opsgate-rootfs.XXXXXX")"
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var,run}
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list-full); do
        [ "$applet" = "bin/busybox" ] && continue
        [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    tar -C "$rootfs" -cf - . | docker_cli import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["sleep","3600"]' \
        - "$IMAGE" >/dev/null
    rm -rf "$rootfs"
}

probe() {
    local name="opsgate-probe-$$"
    docker_cli rm -f "$name" >/dev/null 2>&1 || true
    docker_cli run -d --network none --name "$name" "$IMAGE" sleep 300 >/dev/null
    local running
    running="$(docker_cli inspect -f '{{.State.Running}}' "$name")"
    docker_cli rm -f "$name" >/dev/null
    if [ "$running" != "true" ]; then
        log "probe container is not running"
        exit 1
    fi
}

# EXIT trap of "up": stop what it started when it fails half way.
cleanup_on_failure() {
    local rc=$?
    [ "$rc" -eq 0 ] || down_quiet
    exit "$rc"
}

up() {
    if pid_alive "$DOCKER_PIDFILE" && docker_cli info >/dev/null 2>&1; then
        echo "DOCKER_HOST=unix://$DOCKER_SOCK"
        return 0
    fi
    ensure_packages
    # A half-started DIR from an earlier run: clear it first; and stop what
    # this run started if it fails half way.
    down_quiet
    trap cleanup_on_failure EXIT
    start_containerd
    start_dockerd
    build_image
    [ "${DOCKER_SKIP_PROBE:-0}" = 1 ] || probe
    trap - EXIT
    echo "DOCKER_HOST=unix://$DOCKER_SOCK" >"$DIR/docker.env"
    echo "DOCKER_HOST=unix://$DOCKER_SOCK"
}

# TERM a pid, wait up to $2 seconds, then KILL.
stop_pid() {
    local pid="$1" wait_s="$2" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 $((wait_s * 5))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "pid $pid did not stop after ${wait_s}s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 25); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
}

# Shims of this DIR's containerd: they name its socket on their command line.
our_shims() {
    local f pid
    for f in /proc/[0-9]*/cmdline; do
        pid="${f#/proc/}"
        pid="${pid%/cmdline}"
        if tr '\0' ' ' 2>/dev/null <"$f" | grep -q -- "containerd-shim.* -address $CTD_SOCK "; then
            echo "$pid"
        fi
    done
}

# Mounts that a dockerd left under DIR or its exec-root (the private bind
# mount of the data-root, overlay mounts of a daemon killed mid-way).
leftover_mounts() {
    awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' | while IFS= read -r m; do
        case "$m" in
        "$DIR"/* | "$SOCKDIR"/*) echo "$m" ;;
        esac
    done | sort -r
}

down_quiet() {
    local pid m
    if pid_alive "$DOCKER_PIDFILE" && docker_cli info >/dev/null 2>&1; then
        # Kill (not remove) running containers: a graceful stop would wait
        # their stop timeout (10 s), as "sleep" as pid 1 ignores SIGTERM.
        docker_cli ps -q | xargs -r "${DOCKER:-docker}" -H "unix://$DOCKER_SOCK" kill >/dev/null 2>&1 || true
    fi
    for pidfile in "$DOCKER_PIDFILE" "$DIR/dockerd.launch.pid"; do
        if pid_alive "$pidfile"; then
            # dockerd stops its containers first (up to their stop timeout).
            stop_pid "$(cat "$pidfile")" 30
        fi
    done
    if pid_alive "$CTD_PIDFILE"; then
        stop_pid "$(cat "$CTD_PIDFILE")" 15
    fi
    for pid in $(our_shims); do
        stop_pid "$pid" 5
    done
    leftover_mounts | while IFS= read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done
    rm -f "$DOCKER_PIDFILE" "$DIR/dockerd.launch.pid" "$CTD_PIDFILE" \
        "$DOCKER_SOCK" "$CTD_SOCK" "$CTD_SOCK.ttrpc"
}

case "$action" in
up) up ;;
down) down_quiet ;;
*) usage ;;
esac
