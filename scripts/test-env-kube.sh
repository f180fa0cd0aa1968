#!/usr/bin/env bash
# test-env-kube.sh — a real Kubernetes API server (etcd + kube-apiserver) on
# 127.0.0.1 for opsgate's integration tests. No kubelet, no controller-manager,
# no scheduler: only the API server and its storage.
#
# Usage:
#   scripts/test-env-kube.sh build      # build/cache kube-apiserver (idempotent)
#   scripts/test-env-kube.sh up DIR     # start etcd + kube-apiserver, write DIR/kubeconfig
#   scripts/test-env-kube.sh down DIR   # stop what `up DIR` started
#
# build:
#   Installs from Debian: etcd-server, golang-go, dpkg-dev (+ curl, openssl,
#   python3 if missing). Fetches the Debian `kubernetes` SOURCE package
#   (1.20.2, all Go dependencies vendored) with `apt-get source`, adding a
#   deb-src entry for the configured Debian mirror if there is none. Builds
#   kube-apiserver offline with Debian's Go in GOPATH mode (GO111MODULE=off,
#   as upstream's hack/ scripts do), after generating
#   pkg/generated/openapi/zz_generated.openapi.go with openapi-gen (the source
#   tarball lacks it; without it the build fails with
#   "undefined: openapi.GetOpenAPIDefinitions"). Takes ~8-10 min on 2 cores.
#   The binary is cached at ~/.cache/opsgate/bin/kube-apiserver; if it is
#   there and answers --version, build does nothing. Scratch space is
#   ~/.cache/opsgate/build-kube, removed after success (KEEP_BUILD=1 keeps it).
#
# up DIR:
#   Starts etcd (data in DIR/etcd, wiped on every `up`) and kube-apiserver on
#   free 127.0.0.1 ports, authenticated by a static bearer token (user `admin`,
#   group system:masters), RBAC authorization, serving cert signed by a CA
#   generated here (SANs: IP 127.0.0.1, DNS localhost). Waits for /readyz,
#   creates namespace `staging`, writes DIR/kubeconfig with contexts `test`
#   (namespace default, current) and `staging` (namespace staging), and prints
#   `KUBECONFIG=DIR/kubeconfig`. Also leaves DIR/token, DIR/ca.crt, DIR/server
#   (https://127.0.0.1:PORT), pids in DIR/kube.pids, logs in DIR/etcd.log and
#   DIR/kube-apiserver.log.
#
#   Without kube-controller-manager nothing reconciles: Deployments get no
#   ReplicaSets/Pods and no status (tests may PATCH /status themselves),
#   namespaces deleted stay Terminating, and deletes with
#   propagationPolicy=Foreground/Orphan leave the object behind with a
#   finalizer (only Background, the default for apps/v1, deletes at once).
#
# down DIR:
#   Sends TERM to the pids in DIR/kube.pids, KILL after a few seconds; ignores
#   pids that are already gone.
#
# Environment:
#   OPSGATE_CACHE        cache root (default ~/.cache/opsgate)
#   KEEP_BUILD=1         keep the build scratch dir after a successful build
#   KUBE_READY_TIMEOUT   seconds to wait for /readyz (default 90)
set -euo pipefail

CACHE_ROOT="${OPSGATE_CACHE:-${HOME}/.cache/opsgate}"
BIN_DIR="${CACHE_ROOT}/bin"
APISERVER_BIN="${BIN_DIR}/kube-apiserver"
BUILD_DIR="${CACHE_ROOT}/build-kube"
DEB_SRC_FILE="/etc/apt/sources.list.d/opsgate-deb-src.sources"
READY_TIMEOUT="${KUBE_READY_TIMEOUT:-90}"

export DEBIAN_FRONTEND=noninteractive

log() { printf '[test-env-kube] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_update_once() {
    if [[ ${APT_UPDATED} -eq 0 ]]; then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
}

# ensure_pkgs PKG... : install the Debian packages that are not installed yet.
ensure_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("${p}")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing: ${missing[*]}"
        apt_update_once
        as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_runtime_pkgs() {
    ensure_pkgs etcd-server curl openssl python3
    # kubectl, for the tests of `run:` steps that call it (dry-run forms):
    # Debian's kubernetes-client when the machine has no kubectl.
    command -v kubectl >/dev/null 2>&1 || ensure_pkgs kubernetes-client
}

apiserver_ok() {
    [[ -x ${APISERVER_BIN} ]] && "${APISERVER_BIN}" --version >/dev/null 2>&1
}

# ensure_deb_src: make `apt-get source kubernetes` possible by adding deb-src
# entries mirroring the configured Debian `deb` entries (same mirror, suites).
ensure_deb_src() {
    if apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
        return
    fi
    if [[ ! -f ${DEB_SRC_FILE} ]]; then
        local uri="" suites="" codename=""
        # deb822 sources (bookworm default)
        if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
            uri=$(awk '/^URIs:/ {for (i=2;i<=NF;i++) if ($i ~ /debian\/?$/) {print $i; exit}}' \
                /etc/apt/sources.list.d/*.sources | head -n1)
            suites=$(awk -v u="${uri}" '
                /^URIs:/ {m=0; for (i=2;i<=NF;i++) if ($i==u) m=1}
                /^Suites:/ && m {for (i=2;i<=NF;i++) print $i}' \
                /etc/apt/sources.list.d/*.sources | sort -u | tr '\n' ' ')
        fi
        # one-line sources.list
        if [[ -z ${uri} && -f /etc/apt/sources.list ]]; then
            uri=$(awk '$1=="deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list)
            suites=$(awk -v u="${uri}" '$1=="deb" && $2==u {print $3}' /etc/apt/sources.list \
                | sort -u | tr '\n' ' ')
        fi
        codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
        [[ -n ${uri} ]] || uri="http://deb.debian.org/debian"
        [[ -n ${suites// /} ]] || suites="${codename}"
        log "adding deb-src for ${uri} (${suites}) in ${DEB_SRC_FILE}"
        as_root tee "${DEB_SRC_FILE}" >/dev/null <<EOF
Types: deb-src
URIs: ${uri}
Suites: ${suites}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
        # bookworm carries 1.20.2; if this suite does not, fall back to bullseye.
        log "kubernetes source not in configured suites; adding bullseye deb-src"
        as_root sed -i 's/^Suites: \(.*\)$/Suites: \1 bullseye/' "${DEB_SRC_FILE}"
        as_root apt-get update -qq
        apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes' \
            || die "no source package 'kubernetes' available from apt"
    fi
}

cmd_build() {
    if apiserver_ok; then
        log "cached: ${APISERVER_BIN} ($("${APISERVER_BIN}" --version))"
        return 0
    fi
    local t0 t1 t2 t3 t4 src
    t0=$(date +%s)
    ensure_runtime_pkgs
    ensure_pkgs golang-go dpkg-dev rsync jq make golang-github-modern-go-reflect2-dev
    ensure_deb_src
    t1=$(date +%s)
    log "packages ready in $((t1 - t0))s"

    mkdir -p "${BUILD_DIR}" "${BIN_DIR}"
    cd "${BUILD_DIR}"
    src=$(find . -maxdepth 1 -type d -name 'kubernetes-1.20*' | head -n1)
    if [[ -z ${src} ]]; then
        log "fetching Debian source package kubernetes into ${BUILD_DIR}"
        apt-get source -qq kubernetes >/dev/null 2>apt-source.log || {
            cat apt-source.log >&2; die "apt-get source kubernetes failed"; }
        src=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
        [[ -n ${src} ]] || die "no kubernetes-* directory after apt-get source"
    fi
    cd "${src}"
    t2=$(date +%s)
    log "source ready in $((t2 - t1))s: ${BUILD_DIR}/${src#./}"

    # Upstream's hack/lib/init.sh exports GO111MODULE=off and builds in a
    # GOPATH it lays out under _output/local/go (vendor/k8s.io/* are symlinks
    # into staging/). Everything is vendored: forbid any network access.
    export GO111MODULE=off GOFLAGS="" GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
    export CGO_ENABLED=0 KUBE_VERBOSE=0

    # Go >= 1.18 vs the vendored github.com/modern-go/reflect2 v1.0.1: the
    # binary builds, but every JSON request body that decodes into a map
    # (e.g. POST a Namespace) panics in reflect2.(*UnsafeMapType).Key with a
    # nil pointer dereference (HTTP/2 INTERNAL_ERROR for the client). Debian's
    # golang-github-modern-go-reflect2-dev is v1.0.2, the upstream fix (same
    # API; kubernetes >= 1.23 vendors it): swap it into vendor/.
    local r2=vendor/github.com/modern-go/reflect2 r2deb=/usr/share/gocode/src/github.com/modern-go/reflect2
    if [[ ! -f ${r2}/go_above_118.go ]]; then
        [[ -f ${r2deb}/go_above_118.go ]] || die "${r2deb} is not reflect2 >= 1.0.2"
        log "replacing vendored modern-go/reflect2 v1.0.1 with Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
        find "${r2}" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
        find "${r2deb}" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -not -name '*_test.go' \
            -exec cp {} "${r2}/" \;
    fi

    local openapi_out=pkg/generated/openapi/zz_generated.openapi.go
    if [[ ! -s ${openapi_out} ]]; then
        log "building openapi-gen"
        KUBE_BUILD_PLATFORMS="" hack/make-rules/build.sh ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
        # Same input set as build/root/Makefile.generated_files (KUBE target):
        # every Go dir (staging/src named as vendor/) with a file tagged
        # +k8s:openapi-gen=, minus code-generator and sample-apiserver.
        local dirs
        dirs=$(find -H . \( -not \( \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \) \) \
                    -type f -name '*.go' -print0 \
                | xargs -0 grep -l --null --color=never '^// *+k8s:' \
                | xargs -0 grep -l --color=never '+k8s:openapi-gen=' \
                | sed 's|^\./||; s|^staging/src/|vendor/|; s|/[^/]*$||' \
                | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
                | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -) || true
        [[ -n ${dirs} ]] || die "found no +k8s:openapi-gen packages"
        log "running openapi-gen over $(tr ',' '\n' <<<"${dirs}" | wc -l) packages"
        mkdir -p _output
        hack/run-in-gopath.sh _output/bin/openapi-gen \
            --logtostderr --v 0 \
            -i "${dirs}" \
            -p k8s.io/kubernetes/pkg/generated/openapi \
            -O zz_generated.openapi \
            -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
            -r _output/KUBE_violations.report
        [[ -s ${openapi_out} ]] || die "openapi-gen did not write ${openapi_out}"
    fi
    t3=$(date +%s)
    log "openapi-gen done in $((t3 - t2))s"

    log "building cmd/kube-apiserver (several minutes)"
    KUBE_BUILD_PLATFORMS="" hack/make-rules/build.sh cmd/kube-apiserver
    install -m 0755 _output/bin/kube-apiserver "${APISERVER_BIN}.tmp"
    mv -f "${APISERVER_BIN}.tmp" "${APISERVER_BIN}"
    t4=$(date +%s)
    log "kube-apiserver built in $((t4 - t3))s"
    apiserver_ok || die "built binary does not run --version"

    cd /
    if [[ ${KEEP_BUILD:-0} != 1 ]]; then
        rm -rf "${BUILD_DIR}"
    fi
    log "build total $((t4 - t0))s -> ${APISERVER_BIN} ($("${APISERVER_BIN}" --version))"
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    socks.append(s)
print(' '.join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

abs_dir() { mkdir -p "$1" && cd "$1" && pwd; }

# gen_certs DIR: CA + serving cert (IP 127.0.0.1 / localhost) + SA key pair.
gen_certs() {
    local d=$1
    mkdir -p "${d}/certs"
    (
        cd "${d}/certs"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
            -keyout ca.key -out ca.crt -subj '/CN=opsgate-test-ca' \
            -addext 'basicConstraints=critical,CA:TRUE' \
            -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
        openssl req -new -newkey rsa:2048 -nodes -sha256 \
            -keyout apiserver.key -out apiserver.csr -subj '/CN=kube-apiserver' 2>/dev/null
        cat >apiserver.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -days 3650 -sha256 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        chmod 600 ca.key apiserver.key sa.key
    )
    cp "${d}/certs/ca.crt" "${d}/ca.crt"
}

pid_alive() { kill -0 "$1" 2>/dev/null; }

# Whether DIR holds a server that is running and answers: then `up` leaves
# it alone (like the other test servers' scripts), keeping its objects.
already_up() {
    local dir=$1 pid
    [[ -f ${dir}/kube.pids && -f ${dir}/kubeconfig && -f ${dir}/server && -f ${dir}/token ]] || return 1
    while read -r pid; do
        [[ -n ${pid} ]] || continue
        kill -0 "${pid}" 2>/dev/null || return 1
    done <"${dir}/kube.pids"
    [[ $(curl -sS --cacert "${dir}/ca.crt" -H "Authorization: Bearer $(cat "${dir}/token")" \
        --max-time 5 "$(cat "${dir}/server")/readyz" 2>/dev/null || true) == ok ]]
}

cmd_up() {
    local dir t0 t_ready
    [[ $# -ge 1 ]] || die "usage: $0 up DIR"
    dir=$(abs_dir "$1")
    if ! apiserver_ok; then (cmd_build); fi
    ensure_runtime_pkgs
    if already_up "${dir}"; then
        echo "kube test server already up in ${dir}" >&2
        printf 'KUBECONFIG=%s\n' "${dir}/kubeconfig"
        return 0
    fi
    if [[ -f ${dir}/kube.pids ]]; then cmd_down "${dir}"; fi
    t0=$(date +%s.%N)

    local ports etcd_port peer_port api_port token
    ports=$(free_ports 3)
    read -r etcd_port peer_port api_port <<<"${ports}"
    token=$(openssl rand -hex 16)
    printf '%s\n' "${token}" >"${dir}/token"
    printf '%s,admin,admin-uid,"system:masters"\n' "${token}" >"${dir}/tokens.csv"
    chmod 600 "${dir}/token" "${dir}/tokens.csv"
    rm -rf "${dir}/etcd" "${dir}/certs"
    gen_certs "${dir}"
    local server="https://127.0.0.1:${api_port}"
    printf '%s\n' "${server}" >"${dir}/server"

    : >"${dir}/kube.pids"
    nohup etcd \
        --name opsgate-test \
        --data-dir "${dir}/etcd" \
        --listen-client-urls "http://127.0.0.1:${etcd_port}" \
        --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
        --listen-peer-urls "http://127.0.0.1:${peer_port}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
        --initial-cluster "opsgate-test=http://127.0.0.1:${peer_port}" \
        --initial-cluster-state new \
        --log-level warn \
        </dev/null >"${dir}/etcd.log" 2>&1 &
    local etcd_pid=$!
    echo "${etcd_pid}" >>"${dir}/kube.pids"

    # Wait for etcd (kube-apiserver retries too, but failing fast is clearer).
    local i
    for i in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:${etcd_port}/health" 2>/dev/null | grep -q '"health":"true"' && break
        pid_alive "${etcd_pid}" || break
        sleep 0.2
    done
    if ! curl -fsS "http://127.0.0.1:${etcd_port}/health" 2>/dev/null | grep -q '"health":"true"'; then
        log "etcd did not become healthy; etcd.log tail:"
        tail -n 40 "${dir}/etcd.log" >&2 || true
        cmd_down "${dir}"
        exit 1
    fi

    nohup "${APISERVER_BIN}" \
        --etcd-servers "http://127.0.0.1:${etcd_port}" \
        --bind-address 127.0.0.1 \
        --advertise-address 127.0.0.1 \
        --secure-port "${api_port}" \
        --insecure-port 0 \
        --cert-dir "${dir}/certs" \
        --tls-cert-file "${dir}/certs/apiserver.crt" \
        --tls-private-key-file "${dir}/certs/apiserver.key" \
        --client-ca-file "${dir}/certs/ca.crt" \
        --token-auth-file "${dir}/tokens.csv" \
        --authorization-mode RBAC \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "${dir}/certs/sa.pub" \
        --service-account-signing-key-file "${dir}/certs/sa.key" \
        --service-cluster-ip-range 10.0.0.0/24 \
        --disable-admission-plugins ServiceAccount \
        --endpoint-reconciler-type none \
        --allow-privileged=true \
        --profiling=false \
        --v 1 \
        </dev/null >"${dir}/kube-apiserver.log" 2>&1 &
    local api_pid=$!
    echo "${api_pid}" >>"${dir}/kube.pids"

    local curl_api=(curl -sS --cacert "${dir}/ca.crt" -H "Authorization: Bearer ${token}")
    local deadline=$(( $(date +%s) + READY_TIMEOUT )) ready=0
    while (( $(date +%s) < deadline )); do
        if ! pid_alive "${api_pid}" || ! pid_alive "${etcd_pid}"; then break; fi
        if [[ $("${curl_api[@]}" --max-time 5 "${server}/readyz" 2>/dev/null || true) == ok ]] \
            && "${curl_api[@]}" -f -o /dev/null --max-time 5 "${server}/api/v1/namespaces/default" 2>/dev/null; then
            ready=1; break
        fi
        sleep 0.5
    done
    if [[ ${ready} != 1 ]]; then
        log "kube-apiserver not ready after ${READY_TIMEOUT}s (or a process died)"
        log "---- etcd.log (tail) ----"; tail -n 30 "${dir}/etcd.log" >&2 || true
        log "---- kube-apiserver.log (tail) ----"; tail -n 60 "${dir}/kube-apiserver.log" >&2 || true
        "${curl_api[@]}" --max-time 5 "${server}/readyz?verbose" >&2 2>&1 || true
        cmd_down "${dir}"
        exit 1
    fi

    # Namespace `staging` (`default` is created by the apiserver itself).
    local code
    code=$("${curl_api[@]}" -o /dev/null -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' \
        --data '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"staging"}}' \
        "${server}/api/v1/namespaces") || true
    if [[ ${code} != 201 && ${code} != 409 ]]; then
        log "creating namespace staging: HTTP ${code}; kube-apiserver.log tail:"
        tail -n 40 "${dir}/kube-apiserver.log" >&2 || true
        cmd_down "${dir}"
        exit 1
    fi

    local ca_b64
    ca_b64=$(base64 -w0 <"${dir}/ca.crt")
    cat >"${dir}/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: opsgate-test
  cluster:
    server: ${server}
    certificate-authority-data: ${ca_b64}
users:
- name: admin
  user:
    token: ${token}
contexts:
- name: test
  context:
    cluster: opsgate-test
    user: admin
    namespace: default
- name: staging
  context:
    cluster: opsgate-test
    user: admin
    namespace: staging
current-context: test
preferences: {}
EOF
    chmod 600 "${dir}/kubeconfig"
    t_ready=$(date +%s.%N)
    log "ready in $(awk "BEGIN{printf \"%.1f\", ${t_ready} - ${t0}}")s: ${server} (etcd 127.0.0.1:${etcd_port}, pids $(paste -sd' ' "${dir}/kube.pids"))"
    echo "KUBECONFIG=${dir}/kubeconfig"
}

cmd_down() {
    [[ $# -ge 1 ]] || die "usage: $0 down DIR"
    local dir=$1 pids=() pid i alive
    [[ -f ${dir}/kube.pids ]] || { log "no ${dir}/kube.pids; nothing to stop"; return 0; }
    # Reverse order: kube-apiserver first, then etcd.
    mapfile -t pids < <(tac "${dir}/kube.pids")
    for pid in "${pids[@]}"; do
        [[ ${pid} =~ ^[0-9]+$ ]] || continue
        kill -TERM "${pid}" 2>/dev/null || true
    done
    for i in $(seq 1 50); do
        alive=0
        for pid in "${pids[@]}"; do
            [[ ${pid} =~ ^[0-9]+$ ]] && pid_alive "${pid}" && alive=1
        done
        [[ ${alive} == 0 ]] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        [[ ${pid} =~ ^[0-9]+$ ]] || continue
        if pid_alive "${pid}"; then
            log "pid ${pid} ignored TERM; sending KILL"
            kill -KILL "${pid}" 2>/dev/null || true
        fi
    done
    rm -f "${dir}/kube.pids"
    log "stopped (${dir})"
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    *) echo "usage: $0 {build|up DIR|down DIR}" >&2; exit 2 ;;
esac
