#!/usr/bin/env bash
# Build the OCI images the CRI suite runs, without a registry: OCI image
# layout tarballs importable with `ctr -n k8s.io images import`.
#   busybox.tar  docker.io/oxrun/busybox:latest  (busybox-static, every applet
#                linked in /bin; /etc/passwd, /etc/group; Cmd ["sh"])
#   pause.tar    docker.io/oxrun/pause:latest    (scripts/images/pause.c,
#                gcc -static -Os; the CRI sandbox image)
# Idempotent: an image is rebuilt only when missing or older than its inputs.
#
#   scripts/mkimages.sh [OUTDIR]     (default /opt/oxrun-test/images)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-${OXRUN_CRI_IMAGES:-/opt/oxrun-test/images}}
BUSYBOX=${BUSYBOX:-/bin/busybox}
mkdir -p "$OUT"
log() { printf '[mkimages] %s\n' "$*" >&2; }

[[ -x $BUSYBOX ]] || { log "no $BUSYBOX (package busybox-static)"; exit 1; }
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
file_is_static "$BUSYBOX" || { log "$BUSYBOX is not static (need busybox-static)"; exit 1; }

t0=$SECONDS
if [[ ! -s $OUT/pause.tar || $OUT/pause.tar -ot $here/images/pause.c || $OUT/pause.tar -ot $0 ]]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    gcc -static -Os -Wall -Werror -o "$tmp/pause" "$here/images/pause.c"
    strip "$tmp/pause"
    python3 "$here/images/oci-image.py" "$OUT/pause.tar" docker.io/oxrun/pause:latest \
        --entrypoint /pause --file "/pause=$tmp/pause"
    log "built $OUT/pause.tar"
fi
if [[ ! -s $OUT/busybox.tar || $OUT/busybox.tar -ot $BUSYBOX || $OUT/busybox.tar -ot $0 ]]; then
    python3 "$here/images/oci-image.py" "$OUT/busybox.tar" docker.io/oxrun/busybox:latest \
        --cmd sh --busybox "$BUSYBOX"
    log "built $OUT/busybox.tar"
fi
log "images in $OUT ($((SECONDS - t0))s)"
