#!/usr/bin/env bash
# systemd cgroup driver benchmark: in the systemd test guest (scripts/systemd-vm,
# qemu TCG), create+start+wait+delete and `run` of a /bin/true container with
# --systemd-cgroup (a transient scope per container), oxrun vs runc and crun
# from Debian sid (runc 1.3.x, crun 1.2x; fetched and unpacked by
# scripts/systemd-vm/sid-runtimes.sh, run with sid's glibc in a private
# mount namespace of the guest). Prints medians and ratios to oxrun: TCG
# makes absolute times meaningless, the ratios are the result. Not a test.
#
#   scripts/bench-systemd.sh [N]       (as root; N iterations, default 20)
# Env: OXRUN_BIN (skip the release build), SDVM_DIR (guest cache),
#      BENCH_SID=0 (bookworm's runc 1.1.5 and crun 1.8.1 instead of sid's),
#      BENCH_BOOKWORM=1 (both: sid's and bookworm's).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
vm=${SDVM_DIR:-$repo/target/systemd-vm}
here=$repo/scripts/systemd-vm
n=${1:-20}
die() {
    echo "bench-systemd: $*" >&2
    exit 1
}
((EUID == 0)) || die "must run as root"
for t in runc crun cc; do command -v $t > /dev/null || die "no $t (scripts/setup.sh)"; done

if [ -n "${OXRUN_BIN:-}" ]; then
    bin=$OXRUN_BIN
else
    # shellcheck disable=SC1091
    [[ -f "${HOME:-/root}/.cargo/env" ]] && . "${HOME:-/root}/.cargo/env"
    cargo build --release -p oxrun || die "cargo build --release failed"
    bin=$target/release/oxrun
fi
bash "$here/setup.sh" "$vm" || die "building the guest failed"
sid=
ro=()
if [ "${BENCH_SID:-1}" = 1 ]; then
    bash "$here/sid-runtimes.sh" "$vm/sid" || die "fetching sid's runc and crun failed (BENCH_SID=0: bookworm's)"
    sid=$vm/sid
    ro=(-r "$sid")
fi
share=$vm/bench-share
rm -rf "$share" && mkdir -p "$share"
cc -O2 -o "$share/bench-lifecycle" scripts/bench-lifecycle.c
cp "$bin" "$share/oxrun"
cp "$(command -v runc)" "$share/runc"
cp "$(command -v crun)" "$share/crun"
cp /bin/busybox "$share/busybox"
cp "$here/bench-guest.sh" "$share/"
SDVM_DIR=$vm bash "$here/run.sh" -t 1800 "${ro[@]}" "$share" \
    "N=$n SID='$sid' BOOKWORM=${BENCH_BOOKWORM:-0} bash ./bench-guest.sh"
