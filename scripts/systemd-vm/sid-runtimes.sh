#!/bin/bash
# sid-runtimes.sh - runc and crun from Debian sid (runc 1.3.x, crun 1.2x) for
# scripts/bench-systemd.sh, with everything they need from sid (glibc >= 2.38,
# libseccomp, libsystemd, libcap, libjson-c, libblake3: the dependency
# closure apt resolves on an empty system): fetched through a private apt
# configuration (scripts/lib/debian-apt.sh: the mirror of this machine's own
# apt sources, the system's apt configuration untouched) and unpacked with
# dpkg-deb into DEST. Nothing is installed. In the guest they run in a mount
# namespace whose /usr/lib/x86_64-linux-gnu is an overlay with DEST's on top
# (bench-guest.sh).
#
#   usage: sid-runtimes.sh DEST      (as root; idempotent: no network once done)
#   result: DEST/usr/sbin/runc, DEST/usr/bin/crun, DEST/usr/lib/x86_64-linux-gnu
set -euo pipefail
DEST=${1:?usage: sid-runtimes.sh DEST}
WANT="runc crun"
log() { echo "[sid-runtimes] $*" >&2; }
if [ "$(cat "$DEST/.done" 2> /dev/null)" = "$WANT" ]; then
    log "present: $(cat "$DEST/versions")"
    exit 0
fi
# shellcheck source=scripts/lib/debian-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/debian-apt.sh"
A=$DEST.apt
t0=$SECONDS
debian_apt_init "$A" sid
log "apt-get update (sid, $DEBIAN_APT_MIRROR)"
apt-get "${APT_OPTS[@]}" update -qq
# shellcheck disable=SC2086
mapfile -t pkgs < <(debian_apt_closure sid $WANT)
[ "${#pkgs[@]}" -gt 0 ] || { log "apt resolved nothing for: $WANT"; exit 1; }
rm -f "$A"/debs/*.deb
(cd "$A/debs" && apt-get "${APT_OPTS[@]}" download -qq "${pkgs[@]}")
rm -rf "$DEST" && mkdir -p "$DEST"
for d in "$A"/debs/*.deb; do dpkg-deb -x "$d" "$DEST"; done
rm -rf "$DEST"/usr/share/{doc,man,locale}
[ -x "$DEST/usr/sbin/runc" ] && [ -x "$DEST/usr/bin/crun" ] || { log "no runc or crun in $DEST"; exit 1; }
printf '%s ' "${pkgs[@]}" > "$DEST/versions"
echo "$WANT" > "$DEST/.done"
log "${#pkgs[@]} packages unpacked in $((SECONDS - t0)) s: $(cat "$DEST/versions")"
