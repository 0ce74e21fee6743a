#!/usr/bin/env bash
# Install the newer containerd releases the CRI suite runs against, without
# touching the system's apt configuration: a private apt configuration under
# $APT_DIR names Debian trixie and sid (mirror read from this machine's own
# apt sources, signed by debian-archive-keyring), `apt-get download` fetches
# the .debs and `dpkg-deb -x` unpacks them into
# /opt/oxrun-test/containerd-<version>/ (usr/bin/containerd, ...).
# containerd 1.6.x is bookworm's own `containerd` package (scripts/setup.sh).
#
# Idempotent: a version already unpacked is skipped (no network at all when
# every version is present). Run as root.
#
#   scripts/containerd-matrix.sh            (any cwd)
#   CONTAINERD_MATRIX="1.7.24:trixie 2.1.9:sid" scripts/containerd-matrix.sh
set -euo pipefail

DEST=${OXRUN_TEST_OPT:-/opt/oxrun-test}
APT_DIR=${OXRUN_APT_DIR:-/var/cache/oxrun-apt}
# version:suite pairs. The version is matched as a prefix of the Debian
# version (1.7.24 matches 1.7.24~ds1-10).
read -ra MATRIX <<<"${CONTAINERD_MATRIX:-1.7.24:trixie 2.1.9:sid}"

log() { printf '[containerd-matrix] %s\n' "$*" >&2; }

missing=()
for e in "${MATRIX[@]}"; do
    v=${e%%:*}
    [[ -x "$DEST/containerd-$v/usr/bin/containerd" ]] || missing+=("$e")
done
if ((${#missing[@]} == 0)); then
    log "all present: ${MATRIX[*]} under $DEST"
    exit 0
fi
if ((EUID != 0)); then
    log "missing ${missing[*]} and not root: cannot install"
    exit 1
fi

# shellcheck source=scripts/lib/debian-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-apt.sh"
suites=$(printf '%s\n' "${missing[@]}" | cut -d: -f2 | sort -u | tr '\n' ' ')
debian_apt_init "$APT_DIR" "$suites"
MIRROR=$DEBIAN_APT_MIRROR
t0=$SECONDS
log "apt-get update ($MIRROR: $suites) in $APT_DIR"
apt-get "${APT_OPTS[@]}" update -qq

for e in "${missing[@]}"; do
    v=${e%%:*}
    suite=${e##*:}
    # The exact Debian version of `containerd` in that suite.
    dv=$(debian_apt_version containerd "$suite" "$v")
    if [[ -z $dv ]]; then
        log "containerd $v not found in $suite:"
        apt-cache "${APT_OPTS[@]}" madison containerd >&2 || true
        exit 1
    fi
    log "downloading containerd=$dv ($suite)"
    (cd "$APT_DIR/debs" && apt-get "${APT_OPTS[@]}" download -qq "containerd=$dv")
    deb=$(ls "$APT_DIR/debs/containerd_${dv//:/%3a}_"*.deb)
    tmp="$DEST/.containerd-$v.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    dpkg-deb -x "$deb" "$tmp"
    "$tmp/usr/bin/containerd" --version >&2
    rm -rf "$DEST/containerd-$v"
    mv "$tmp" "$DEST/containerd-$v"
    log "installed $DEST/containerd-$v"
done
log "done in $((SECONDS - t0))s"
