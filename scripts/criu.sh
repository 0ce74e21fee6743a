#!/usr/bin/env bash
# Install a working criu 4.x for the checkpoint/restore tests without
# touching the system: bookworm's criu 3.17 cannot run on current kernels
# (`criu check`: vdso), and newer Debian criu needs glibc >= 2.38. So the
# criu package of a newer suite and its whole dependency closure (glibc
# included) are downloaded through a private apt configuration
# (scripts/lib/debian-apt.sh) and unpacked into
# /opt/oxrun-test/criu-<version>/root; /opt/oxrun-test/criu-<version>/criu is
# a wrapper that runs that criu through the unpacked glibc's own dynamic
# loader with the unpacked libraries (`ld.so --library-path`), so nothing of
# the host's libc is mixed in. `oxrun --criu /opt/oxrun-test/criu-<v>/criu`.
#
# With OXRUN_CRIU_REFS=1 it also unpacks runc and crun (+ libcriu2, which
# crun dlopens) from the same suite
# into that root (reference runtimes for comparing checkpoint/restore;
# they re-execute themselves, so they need patchelf to point them at the
# unpacked loader: root/usr/sbin/runc, root/usr/bin/crun).
#
# Idempotent: nothing is fetched when the wrapper already runs. Run as root.
#
#   scripts/criu.sh                       (criu 4.2.1 from sid)
#   CRIU_SOURCE=4.1.1:trixie scripts/criu.sh
set -euo pipefail

DEST=${OXRUN_TEST_OPT:-/opt/oxrun-test}
APT_DIR=${OXRUN_CRIU_APT_DIR:-/var/cache/oxrun-apt-criu}
SOURCE=${CRIU_SOURCE:-4.2.1:sid}
VERSION=${SOURCE%%:*}
SUITE=${SOURCE##*:}
OUT=$DEST/criu-$VERSION
REFS=${OXRUN_CRIU_REFS:-0}

log() { printf '[criu] %s\n' "$*" >&2; }

refs_present() {
    [[ $REFS != 1 ]] || { [[ -x $OUT/root/usr/sbin/runc ]] && "$OUT/root/usr/sbin/runc" --version >/dev/null 2>&1; }
}
if [[ -x $OUT/criu ]] && "$OUT/criu" --version >/dev/null 2>&1 && refs_present; then
    log "present: $OUT/criu ($("$OUT/criu" --version | head -1))"
    exit 0
fi
if ((EUID != 0)); then
    log "criu $VERSION missing at $OUT and not root: cannot install"
    exit 1
fi

# shellcheck source=scripts/lib/debian-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-apt.sh"
t0=$SECONDS
debian_apt_init "$APT_DIR" "$SUITE"
log "apt-get update ($DEBIAN_APT_MIRROR: $SUITE) in $APT_DIR"
apt-get "${APT_OPTS[@]}" update -qq

dv=$(debian_apt_version criu "$SUITE" "$VERSION")
if [[ -z $dv ]]; then
    log "criu $VERSION not found in $SUITE (set CRIU_SOURCE=<version>:<suite>, e.g. 4.1.1:trixie):"
    apt-cache "${APT_OPTS[@]}" madison criu >&2 || true
    exit 1
fi
want=("criu=$dv")
if [[ $REFS == 1 ]]; then
    want+=(runc crun libcriu2)
fi
mapfile -t closure < <(debian_apt_closure "$SUITE" "${want[@]}")
if ((${#closure[@]} == 0)); then
    log "could not resolve the dependencies of ${want[*]} in $SUITE"
    apt-get "${APT_OPTS[@]}" -o "APT::Default-Release=$SUITE" -s install --no-install-recommends "${want[@]}" >&2 || true
    exit 1
fi
log "downloading ${#closure[@]} packages: ${closure[*]}"
(cd "$APT_DIR/debs" && apt-get "${APT_OPTS[@]}" download -qq "${closure[@]}")

tmp=$DEST/.criu-$VERSION.tmp
rm -rf "$tmp"
mkdir -p "$tmp/root"
for p in "${closure[@]}"; do
    name=${p%%=*}
    v=${p#*=}
    deb=$(ls "$APT_DIR/debs/${name}_${v//:/%3a}_"*.deb)
    dpkg-deb -x "$deb" "$tmp/root"
done
lib=$OUT/root/usr/lib/x86_64-linux-gnu
[[ -e $tmp/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 ]] || {
    log "no dynamic loader in the unpacked packages"
    exit 1
}
cat >"$tmp/criu" <<WRAP
#!/bin/sh
# criu $dv from Debian $SUITE with its own glibc (installed by scripts/criu.sh).
exec $lib/ld-linux-x86-64.so.2 --library-path $lib --argv0 criu $OUT/root/usr/sbin/criu "\$@"
WRAP
chmod 755 "$tmp/criu"
rm -rf "$OUT"
mv "$tmp" "$OUT"
if [[ $REFS == 1 ]]; then
    if ! command -v patchelf >/dev/null; then
        log "OXRUN_CRIU_REFS=1 needs patchelf (apt-get install patchelf)"
        exit 1
    fi
    for b in usr/sbin/runc usr/bin/crun; do
        patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$lib" "$OUT/root/$b"
        "$OUT/root/$b" --version | head -1 >&2
    done
fi
"$OUT/criu" --version >&2
if ! "$OUT/criu" check >&2; then
    log "WARNING: criu check fails on this kernel"
fi
log "installed $OUT/criu in $((SECONDS - t0))s"
