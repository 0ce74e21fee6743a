#!/usr/bin/env bash
# CRI benchmark on containerd 2.1.9: our shim (handler `oxrun`,
# containerd-shim-rust-v2 as a runc-type runtime's runtime_path) vs
# containerd's Go shim (containerd-shim-runc-v2) with runc and with crun
# (`BinaryName`), one after another in the same run. Run as root.
#
#   scripts/bench-cri.sh [N...]        (default: 1 10 50)
#
# For each handler a private containerd with CRI and a CNI bridge (the CRI
# suite's harness, integration/tests/common_cri, through the tiny client
# integration/examples/cri-tool.rs) runs in its own mount + network + IPC
# namespaces; for crun /sys/fs/cgroup/unified is unmounted in that mount
# namespace only (crun 1.8.1 refuses hybrid cgroup hosts), and crun runs
# through a small /bin/sh wrapper that rewrites the bundle's ociVersion
# (containerd 2.1.9 writes 1.2.x; crun 1.8.1 accepts only 1.0.x) before
# `create`: one sh + sed more per crun call, counted in crun's numbers. The
# three containerds run at the same time and take turns pod by pod (the
# order rotating), so other load on the machine is spread evenly. After one
# uncounted warm-up pod each, for each N: N pods per handler, one after
# another, each with one busybox `sleep` container:
#   start      RunPodSandbox + CreateContainer + StartContainer, until
#              ContainerStatus says RUNNING
#   memory     with all N running: RSS and PSS (/proc/<pid>/smaps_rollup)
#              of every shim of that containerd, summed, divided by N
#   teardown   StopContainer (timeout 0) + RemoveContainer +
#              StopPodSandbox + RemovePodSandbox, per pod
# Prints a markdown table of medians and ratios vs oxrun (also written to
# target/bench/cri-<date>.md). Afterwards every containerd is stopped and
# checked clean (no pod, shim, veth, mount, process or container cgroup).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
log() { echo "[bench-cri] $*" >&2; }
die() {
    log "$*"
    exit 1
}

((EUID == 0)) || die "must run as root"
counts=("$@")
((${#counts[@]})) || counts=(1 10 50)
for n in "${counts[@]}"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a pod count: $n"
done
command -v crun >/dev/null || die "no crun (apt-get install crun)"
command -v runc >/dev/null || die "no runc (apt-get install runc)"

# shellcheck disable=SC1091
[[ -f "${HOME:-/root}/.cargo/env" ]] && . "${HOME:-/root}/.cargo/env"
bash scripts/containerd-matrix.sh
bash scripts/mkimages.sh
target="${CARGO_TARGET_DIR:-$repo/target}"
log "cargo build --release; cargo build -p integration --example cri-tool"
cargo build -q --release
# The client is test code: dev profile (panic = unwind, so its clean-up
# runs on any failure); the same client for every handler.
cargo build -q -p integration --example cri-tool

# crun 1.8.1 accepts only ociVersion 1.0.x ("unknown version specified").
tmp="$(mktemp -d /tmp/oxrun-bench-cri.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
crun_path="$(command -v crun)"
cat >"$tmp/crun" <<WRAP
#!/bin/sh
b=; prev=
for a in "\$@"; do
    [ "\$prev" = --bundle ] && b=\$a
    prev=\$a
done
if [ -n "\$b" ] && [ -f "\$b/config.json" ]; then
    sed -i 's/"ociVersion":"[^"]*"/"ociVersion":"1.0.2-dev"/' "\$b/config.json"
fi
exec $crun_path "\$@"
WRAP
chmod 0755 "$tmp/crun"

out="$target/bench/cri-$(date -u +%Y%m%dT%H%M%SZ).md"
mkdir -p "$(dirname "$out")"
{
    echo "containerd 2.1.9, $(crun --version | head -1), $(runc --version | head -1); $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; pods: ${counts[*]}"
    echo
} >"$out"
# Every CRI call and wait has its own deadline inside (60 s / 30 s); this is
# the last resort.
OXRUN_CRUN_BIN="$tmp/crun" OXRUN_BIN="$target/release/oxrun" OXRUN_SHIM_BIN="$target/release/containerd-shim-rust-v2" \
    timeout -k 10 3600 "$target/debug/examples/cri-tool" bench "${counts[@]}" >>"$out"
cat "$out"
log "written to $out"
