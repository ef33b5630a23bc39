#!/usr/bin/env bash
# Make a Docker daemon answer, and give it the test image jobrelay-test/busybox:latest.
set -euo pipefail

log() { printf '[prepare-docker] %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v busybox >/dev/null 2>&1; then
        log "installing docker.io, busybox-static, docker-registry"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq docker.io busybox-static docker-registry openssl >/dev/null
    fi
    if ! docker info >/dev/null 2>&1; then
        log "starting dockerd"
        nohup dockerd >/tmp/jobrelay-dockerd.log 2>&1 &
        for _ in $(seq 1 60); do
            docker info >/dev/null 2>&1 && break
            sleep 1
        done
    fi
fi
docker info >/dev/null 2>&1 || { log "dockerd did not come up"; tail -50 /tmp/jobrelay-dockerd.log >&2; exit 1; }

if ! docker image inspect jobrelay-test/busybox:latest >/dev/null 2>&1; then
    log "importing busybox root filesystem as jobrelay-test/busybox:latest"
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/work"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/bin' --change 'CMD ["sh"]' - jobrelay-test/busybox:latest >/dev/null
    rm -rf "$root"
fi
log "docker ready: $(docker version --format '{{.Server.Version}}')"
