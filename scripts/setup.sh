#!/usr/bin/env bash
# Idempotent set-up of a Debian bookworm machine (run as root) for building
# and testing oxrun. Fast when everything is already there: apt-get runs only
# if a package is missing.
#
# To add packages, append to PACKAGES below (or call add_packages), or pass
# them for one run via the environment: EXTRA_PACKAGES="containerd podman".
set -euo pipefail

PACKAGES=(
    busybox-static # rootfs for test bundles
    runc crun      # reference runtimes (comparison tests, bench)
    hyperfine time # bench.sh
    build-essential gcc pkg-config
    iproute2 util-linux procps
    jq python3 # python3: config.json patching; jq: reading state JSON
)

add_packages() { PACKAGES+=("$@"); }

# Client compatibility tests (integration/tests/containerd.rs, podman.rs):
# containerd 1.6 (ctr + the Go runc shim io.containerd.runc.v2) and
# podman 4.3 with conmon (--network none: no slirp4netns).
add_packages containerd podman conmon
# Rootless tests (integration/tests/rootless.rs): newuidmap/newgidmap, and
# the unprivileged user made below.
add_packages uidmap
# CRI suite (integration/tests/cri.rs): CNI plugins (bridge, host-local,
# loopback in /usr/lib/cni); protoc for the k8s-cri client's build script.
# containerd 1.7 and 2.1 come from scripts/containerd-matrix.sh (below).
add_packages containernetworking-plugins protobuf-compiler
# Checkpoint/restore (integration/tests/checkpoint.rs): criu locks the
# network with iptables for --tcp-established (criu itself: scripts/criu.sh).
add_packages iptables
# D-Bus client tests (libcontainer/src/dbus/bus_tests.rs): a private bus.
add_packages dbus-daemon
# The systemd test guest (scripts/test-systemd.sh, scripts/systemd-vm):
# debootstrap builds its root file system (mkfs.ext4 -d from e2fsprogs,
# which every Debian has, makes the image).
add_packages debootstrap
read -ra _extra <<<"${EXTRA_PACKAGES:-}"
add_packages "${_extra[@]}"

log() { printf '[setup] %s\n' "$*" >&2; }

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "apt packages: all ${#PACKAGES[@]} present"
        return
    fi
    if ((EUID != 0)); then
        log "missing packages (${missing[*]}) and not root: cannot install"
        exit 1
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
    if ! command -v cargo >/dev/null && [[ -f "${HOME:-/root}/.cargo/env" ]]; then
        # shellcheck disable=SC1091
        . "${HOME:-/root}/.cargo/env"
    fi
    if ! command -v cargo >/dev/null; then
        log "ERROR: no Rust toolchain: cargo is not on PATH and ~/.cargo/env does not exist."
        log "Install one with rustup (https://rustup.rs) and re-run."
        exit 1
    fi
    if command -v rustup >/dev/null; then
        local installed c
        installed="$(rustup component list --installed 2>/dev/null || true)"
        for c in rustfmt clippy; do
            grep -q "^$c" <<<"$installed" && continue
            log "adding rustup component $c"
            rustup component add "$c" || log "WARNING: could not add $c"
        done
    fi
    log "rust: $(cargo --version)"
}

# The unprivileged user of the rootless tests, with subordinate id ranges
# (useradd adds them to /etc/subuid and /etc/subgid once those files exist).
ensure_rootless_user() {
    local u=oxrun-rl
    touch /etc/subuid /etc/subgid
    id "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$u"
    if ! grep -q "^$u:" /etc/subuid || ! grep -q "^$u:" /etc/subgid; then
        usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "$u"
    fi
    log "rootless test user: $u ($(grep "^$u:" /etc/subuid))"
}

install_packages
ensure_rust
ensure_rootless_user
bash "$(dirname "${BASH_SOURCE[0]}")/containerd-matrix.sh"
# criu 4.x for the checkpoint/restore tests (integration/tests/checkpoint.rs):
# sid's criu with its own glibc under /opt/oxrun-test/criu-<version>.
bash "$(dirname "${BASH_SOURCE[0]}")/criu.sh"
