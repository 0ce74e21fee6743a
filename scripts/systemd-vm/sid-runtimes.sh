#!/bin/bash
# sid-runtimes.sh - runc and crun from Debian sid (runc 1.3.x, crun 1.2x) for
# scripts/bench-systemd.sh, with the sid libraries they need (glibc >= 2.38,
# libseccomp, libsystemd, libcap, libjson-c, libblake3): the .debs are
# fetched through a private apt configuration (the mirror is read from this
# machine's own apt sources; the system's apt configuration is not touched)
# and unpacked with dpkg-deb into DEST. Nothing is installed. In the guest
# they run in a mount namespace whose /usr/lib/x86_64-linux-gnu is an
# overlay with DEST's on top (bench-guest.sh).
#
#   usage: sid-runtimes.sh DEST      (as root; idempotent: no network once done)
#   result: DEST/usr/sbin/runc, DEST/usr/bin/crun, DEST/usr/lib/x86_64-linux-gnu
set -euo pipefail
DEST=${1:?usage: sid-runtimes.sh DEST}
PKGS="runc crun libc6 libgcc-s1 libseccomp2 libsystemd0 libcap2 libjson-c5 libblake3-0"
log() { echo "[sid-runtimes] $*" >&2; }
if [ "$(cat "$DEST/.done" 2> /dev/null)" = "$PKGS" ]; then
    log "present: $(cat "$DEST/versions")"
    exit 0
fi
mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        case $f in
        *.sources) awk 'tolower($1)=="uris:"{for(i=2;i<=NF;i++)print $i}' "$f" ;;
        *) awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /^[a-z]+:\/\//){print $i; break}}' "$f" ;;
        esac
    done | grep -v -- '-security' | grep -E '/debian/?$' | head -n1
}
M=${SDVM_MIRROR:-$(mirror)}
[ -n "$M" ] || M=http://deb.debian.org/debian
A=$DEST.apt
mkdir -p "$A"/{lists/partial,cache/archives/partial,preferences.d,debs}
cat > "$A/sid.sources" << EOF
Types: deb
URIs: $M
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
touch "$A/status"
O=(-o "Dir::Etc::sourcelist=$A/sid.sources" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::lists=$A/lists" -o "Dir::State::status=$A/status" -o "Dir::Cache=$A/cache"
    -o "Dir::Etc::preferences=$A/preferences" -o "Dir::Etc::preferencesparts=$A/preferences.d"
    -o "APT::Default-Release=" -o "APT::Sandbox::User=root")
t0=$SECONDS
log "apt-get update (sid, $M)"
apt-get "${O[@]}" update -qq
rm -f "$A"/debs/*.deb
# shellcheck disable=SC2086
(cd "$A/debs" && apt-get "${O[@]}" download -qq $PKGS)
rm -rf "$DEST" && mkdir -p "$DEST"
for d in "$A"/debs/*.deb; do dpkg-deb -x "$d" "$DEST"; done
rm -rf "$DEST"/usr/share/{doc,man}
(cd "$A/debs" && ls ./*.deb | sed 's|^\./||; s|_amd64.deb$||') | tr '\n' ' ' > "$DEST/versions"
echo "$PKGS" > "$DEST/.done"
log "unpacked in $((SECONDS - t0)) s: $(cat "$DEST/versions")"
