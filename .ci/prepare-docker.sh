#!/usr/bin/env bash
# Prepare what the Docker executor's tests need, idempotently (safe to run twice):
#
# - a Docker daemon on the unix socket AND on tcp://127.0.0.1:2376 with --tlsverify,
#   using a CA, server and client certificate generated here with openssl into
#   $TLS_DIR (tests read it from JOBRELAY_TEST_DOCKER_TLS_DIR, same default);
# - the test image jobrelay-test/busybox:latest, imported from busybox-static;
# - Debian's docker-registry on 127.0.0.1:5000 with its own config under /tmp
#   (tests read JOBRELAY_TEST_REGISTRY, same default).
#
# A dockerd already running without the TLS listener is restarted with it.
set -euo pipefail

TLS_DIR="${JOBRELAY_TEST_DOCKER_TLS_DIR:-/tmp/jobrelay-docker-tls}"
TLS_ADDR="127.0.0.1:2376"
REGISTRY_DIR="/tmp/jobrelay-registry"
REGISTRY_ADDR="127.0.0.1:5000"
DOCKERD_LOG="/tmp/jobrelay-dockerd.log"
REGISTRY_LOG="$REGISTRY_DIR/registry.log"
TEST_IMAGE="jobrelay-test/busybox:latest"

log() { printf '[prepare-docker] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

install_missing() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
    command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    # The daemon-fault tests give their private dockerd a bridge of its own.
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

systemd_running() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# --- TLS material -------------------------------------------------------------------

tls_material_valid() {
    local f
    for f in ca.pem ca-key.pem server-cert.pem server-key.pem cert.pem key.pem; do
        [ -s "$TLS_DIR/$f" ] || return 1
    done
    # Both leaf certificates chain to our CA and stay valid for at least a day.
    openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server-cert.pem" "$TLS_DIR/cert.pem" \
        >/dev/null 2>&1 || return 1
    openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server-cert.pem" >/dev/null 2>&1 || return 1
    openssl x509 -checkend 86400 -noout -in "$TLS_DIR/cert.pem" >/dev/null 2>&1
}

generate_tls_material() {
    log "generating a test CA, a server certificate for 127.0.0.1 and a client certificate in $TLS_DIR"
    local work
    work=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 \
        -keyout "$work/ca-key.pem" -out "$work/ca.pem" \
        -subj "/CN=jobrelay test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=127.0.0.1" \
        -keyout "$work/server-key.pem" -out "$work/server.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" \
        >"$work/server.ext"
    openssl x509 -req -sha256 -days 825 -in "$work/server.csr" \
        -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -CAcreateserial \
        -extfile "$work/server.ext" -out "$work/server-cert.pem" 2>/dev/null

    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=jobrelay-test-client" \
        -keyout "$work/key.pem" -out "$work/client.csr" 2>/dev/null
    printf '%s\n' "extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature" \
        >"$work/client.ext"
    openssl x509 -req -sha256 -days 825 -in "$work/client.csr" \
        -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -CAcreateserial \
        -extfile "$work/client.ext" -out "$work/cert.pem" 2>/dev/null

    mkdir -p "$TLS_DIR"
    chmod 0755 "$TLS_DIR"
    install -m 0644 "$work/ca.pem" "$work/server-cert.pem" "$work/cert.pem" "$TLS_DIR/"
    install -m 0600 "$work/ca-key.pem" "$work/server-key.pem" "$TLS_DIR/"
    # The client key opens the daemon like the unix socket does: same audience.
    install -m 0640 "$work/key.pem" "$TLS_DIR/"
    if getent group docker >/dev/null 2>&1; then
        chgrp docker "$TLS_DIR/key.pem"
    fi
    rm -rf "$work"
}

# --- dockerd ------------------------------------------------------------------------

docker_unix_ok() { docker info >/dev/null 2>&1; }

docker_tls_ok() {
    docker --tlsverify --tlscacert "$TLS_DIR/ca.pem" --tlscert "$TLS_DIR/cert.pem" \
        --tlskey "$TLS_DIR/key.pem" -H "tcp://$TLS_ADDR" version >/dev/null 2>&1
}

stop_dockerd() {
    if systemd_running && systemctl is-active --quiet docker.service 2>/dev/null; then
        log "stopping the systemd docker service (replaced by a dockerd with the TLS listener)"
        systemctl stop docker.socket docker.service >/dev/null 2>&1 || true
    fi
    local pid
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping dockerd (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) did not stop"
    fi
    # A dockerd without a pid file (started by hand elsewhere) would hold the socket.
    docker_unix_ok && die "a Docker daemon still answers on the unix socket; stop it first"
    return 0
}

start_dockerd() {
    log "starting dockerd on the unix socket and tcp://$TLS_ADDR (--tlsverify)"
    nohup dockerd \
        -H unix:///var/run/docker.sock \
        -H "tcp://$TLS_ADDR" \
        --tlsverify \
        --tlscacert "$TLS_DIR/ca.pem" \
        --tlscert "$TLS_DIR/server-cert.pem" \
        --tlskey "$TLS_DIR/server-key.pem" \
        >>"$DOCKERD_LOG" 2>&1 &
    for _ in $(seq 1 120); do
        docker_unix_ok && docker_tls_ok && return 0
        sleep 0.5
    done
    tail -50 "$DOCKERD_LOG" >&2
    die "dockerd did not come up with both listeners"
}

ensure_dockerd() {
    if docker_unix_ok && docker_tls_ok; then
        return 0
    fi
    if docker_unix_ok; then
        log "the running dockerd has no working TLS listener on $TLS_ADDR: restarting it"
    fi
    stop_dockerd
    start_dockerd
}

# --- test image ---------------------------------------------------------------------

ensure_test_image() {
    docker image inspect "$TEST_IMAGE" >/dev/null 2>&1 && return 0
    log "importing busybox root filesystem as $TEST_IMAGE"
    local root
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/work"
    chmod 1777 "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    echo 'nogroup:x:65534:' >>"$root/etc/group"
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/bin' --change 'CMD ["sh"]' - "$TEST_IMAGE" >/dev/null
    rm -rf "$root"
}

# --- registry -----------------------------------------------------------------------

registry_ok() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$REGISTRY_ADDR/v2/")" = 200 ]
}

ensure_registry() {
    registry_ok && return 0
    if systemd_running && systemctl is-active --quiet docker-registry.service 2>/dev/null; then
        # Debian's unit serves /etc/docker/registry/config.yml (with htpasswd auth) on :5000.
        log "stopping the systemd docker-registry service (replaced by an open test registry)"
        systemctl stop docker-registry.service >/dev/null 2>&1 || true
    fi
    local pid
    pid=$(cat "$REGISTRY_DIR/registry.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "registry (pid $pid) does not answer: restarting it"
        kill -TERM "$pid" || true
        for _ in $(seq 1 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
    fi
    mkdir -p "$REGISTRY_DIR/data"
    cat >"$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
  fields:
    service: jobrelay-test-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    log "starting docker-registry on $REGISTRY_ADDR"
    nohup docker-registry serve "$REGISTRY_DIR/config.yml" >>"$REGISTRY_LOG" 2>&1 &
    echo $! >"$REGISTRY_DIR/registry.pid"
    for _ in $(seq 1 60); do
        registry_ok && return 0
        sleep 0.25
    done
    tail -30 "$REGISTRY_LOG" >&2
    die "docker-registry did not come up on $REGISTRY_ADDR"
}

install_missing
tls_material_valid || generate_tls_material
ensure_dockerd
ensure_test_image
ensure_registry
log "docker ready: $(docker version --format '{{.Server.Version}}'), TLS on tcp://$TLS_ADDR" \
    "(certificates in $TLS_DIR), registry on $REGISTRY_ADDR"
