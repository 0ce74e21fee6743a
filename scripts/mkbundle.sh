#!/usr/bin/env bash
# Make a busybox OCI bundle.
#
#   scripts/mkbundle.sh DIR [ARG...]
#
# DIR/rootfs gets Debian's static busybox plus one symlink per applet in /bin;
# DIR/config.json comes from `$OXRUN spec` (default: target/release/oxrun) or,
# failing that, `runc spec`, with process.args set to ARG... (default: a small
# hello script) and process.terminal set to false.
# Env: OXRUN (runtime used for `spec`), BUSYBOX (default /bin/busybox).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OXRUN="${OXRUN:-$repo/target/release/oxrun}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"

if (($# < 1)); then
    echo "usage: $0 DIR [ARG...]" >&2
    exit 2
fi
mkdir -p "$1"
bundle="$(cd "$1" && pwd)"
shift
if (($# == 0)); then
    set -- sh -c 'echo hello from oxrun; cat /proc/self/status | grep -E "^(Pid|NoNewPrivs)"; hostname'
fi

# rootfs
root="$bundle/rootfs"
mkdir -p "$root"/{bin,proc,sys,dev,tmp,etc,root}
chmod 1777 "$root/tmp"
install -m 0755 "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [[ "$applet" == busybox ]] || ln -sfn busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

# config.json
rm -f "$bundle/config.json"
if [[ -x "$OXRUN" ]] && "$OXRUN" spec --bundle "$bundle" 2>/dev/null &&
    [[ -s "$bundle/config.json" ]]; then
    source="$OXRUN spec"
else
    rm -f "$bundle/config.json"
    runc spec --bundle "$bundle"
    source="runc spec"
fi

tmp="$bundle/config.json.tmp"
python3 -c '
import json, sys
path, args = sys.argv[1], sys.argv[2:]
with open(path) as f:
    cfg = json.load(f)
cfg["process"]["args"] = args
cfg["process"]["terminal"] = False
json.dump(cfg, sys.stdout, indent=2)
' "$bundle/config.json" "$@" >"$tmp"
mv "$tmp" "$bundle/config.json"
echo "bundle $bundle ready (config.json from $source)" >&2
